#!/usr/bin/env bash
# The test command: installs anything missing, builds if needed, runs the whole
# suite (C++ GoogleTest suites, Lua scripts through the host, bad-input checks,
# an out-of-tree plugin build), then the fuzz targets briefly. The exit code is
# the result. Arguments go to ctest, and then the fuzz targets are left out.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/build.sh
cd build
# Tests run two at a time, each with all cores' threads: OpenMP threads must
# sleep rather than spin while they wait, or each test steals the other's cores
# (the cdrmix program does this itself; the test executables don't).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# A test that hangs fails after ten minutes instead of stalling the whole run.
ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@"
[[ $# -eq 0 ]] || exit 0

# Every fuzz target replays its seeds and past findings under ASan and UBSan and
# fuzzes for 10 s (docs/reliability.md); without clang it skips (77).
cd ..
status=0
scripts/fuzz.sh --seconds 10 || status=$?
[[ $status -eq 77 ]] && status=0
exit $status
