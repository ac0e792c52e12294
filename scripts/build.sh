#!/usr/bin/env bash
# Configures and builds CDRmix into build/ (Release; incremental when build/ exists).
# Uses every core and ccache when installed. Extra arguments go to CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."

# LibTorch headers are precompiled per target; these let ccache reuse those compiles too.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

# The CUDA kernels compile whenever nvcc is found (they run only with a CUDA
# LibTorch); CUDA's usual home need not be on PATH.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
