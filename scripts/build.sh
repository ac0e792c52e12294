#!/usr/bin/env bash
# Configures and builds CDRmix into build/ (Release; incremental when build/ exists).
# Uses every core and ccache when installed. Extra arguments go to CMake's configure step.
#   scripts/build.sh [--main] [CMAKE_ARGS...]
# --main builds only the `cdrmix` program and the plugins (target cdrmix_main), not the
# test suite; the configuration is the same, so a later full build compiles only the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=()
if [[ "${1:-}" == "--main" ]]; then
  targets=(--target cdrmix_main)
  shift
fi

# LibTorch headers are precompiled per target; these let ccache reuse those compiles too.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
# Paths under the checkout are hashed relative to it, so another clone reuses the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}

# The CUDA kernels compile whenever nvcc is found (they run only with a CUDA
# LibTorch); CUDA's usual home need not be on PATH.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)" "${targets[@]}"
