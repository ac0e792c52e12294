#!/usr/bin/env bash
# Configures and builds CDRmix into build/ (Release; incremental when build/ exists).
# Uses every core and ccache when installed. Extra arguments go to CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."

# LibTorch headers are precompiled per target; these let ccache reuse those compiles too.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
