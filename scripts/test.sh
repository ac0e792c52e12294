#!/usr/bin/env bash
# The test command: installs anything missing, builds if needed, runs the whole
# suite (C++ GoogleTest suites, Lua scripts through the host, bad-input checks,
# an out-of-tree plugin build). The exit code is the result.
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
