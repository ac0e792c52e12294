#!/usr/bin/env bash
# The test command: installs anything missing, builds if needed, runs the whole
# suite (C++ GoogleTest suites, Lua scripts through the host, bad-input checks,
# an out-of-tree plugin build). The exit code is the result.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/build.sh
cd build
# A test that hangs fails after ten minutes instead of stalling the whole run.
ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@"
