# Shared by the GUI tests: arguments, the virtual display, and skipping without one.
# Usage (sourced): CDRMIX PNG_CHECK WORK_DIR
set -euo pipefail
CDRMIX=$1 PNG_CHECK=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK"
if ! command -v xvfb-run >/dev/null 2>&1; then
  echo "SKIPPED: xvfb-run is not installed (apt-get install xvfb xauth) so the dashboard cannot be rendered here"
  exit 77
fi
# One virtual screen per command; LP_NUM_THREADS=1 keeps Mesa's software renderer on one core.
gui() { LP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1280x800x24" "$CDRMIX" gui "$@"; }
make_run() { "$CDRMIX" run tests/gui/make_metrics.lua "$@" >/dev/null; }
