#!/usr/bin/env bash
# The benchmark table (`cdrmix bench`): every row a figure and a ratio against a
# baseline measured in the same run. Builds first; installs python3-torch (the
# Python PyTorch baseline of the end-to-end row) when run as root or with sudo.
# Runs under xvfb-run when there is no display, so the dashboard row can measure.
# Usage: scripts/bench.sh [--quick] [--only ROW,ROW...]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh >/dev/null

# Debian's own Python: the one python3-torch installs into.
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch >/dev/null
  else
    echo "bench: python3-torch is not installed: the end-to-end row will be skipped" >&2
  fi
fi

if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  # -noreset: the row opens a window per round; a server resetting after the
  # last client left refuses the next one now and then.
  exec xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp -noreset" build/bin/cdrmix bench "$@"
fi
exec build/bin/cdrmix bench "$@"
