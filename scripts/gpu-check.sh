#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with an NVIDIA GPU:
#   1. builds CDRmix against the CUDA LibTorch inside the installed PyTorch 2.x
#      wheel (torch/share/cmake), with the CUDA backend plugin (nvcc, sm_80 + sm_90);
#   2. runs the test suite there: the CUDA kernels against the CPU references
#      (forward and gradients), and everything else on LibTorch 2.x;
#   3. benchmarks WKV-7 and WKV-6 forward + backward at B=8 T=4096 C=4096 (head 64);
#   4. trains cdrmix-small on the GPU for a few hundred steps and reports tokens/s.
# Libraries the GPU machine lacks (yaml-cpp, LuaJIT, CLI11, nlohmann-json,
# GoogleTest, sentencepiece, pkgconf) can come as Debian packages in $CDRMIX_DEBS (default
# .gpu/debs, see `scripts/gpu-check.sh --fetch-debs`): they are unpacked into a
# private prefix, never over the system.
#
#   scripts/gpu-check.sh --fetch-debs   # on a Debian 12 machine with apt: download the packages
#   scripts/gpu-check.sh [OUTDIR]       # on the GPU machine: build, test, bench, train
#   scripts/gpu-check.sh --kernels [OUTDIR]  # only build, the GPU kernel tests and the GPU bench
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=${CDRMIX_DEBS:-.gpu/debs}
PACKAGES="libyaml-cpp-dev libyaml-cpp0.7 libluajit-5.1-dev libluajit-5.1-2 libluajit-5.1-common
  nlohmann-json3-dev libcli11-dev libgtest-dev libsentencepiece-dev libsentencepiece0 pkgconf pkgconf-bin libpkgconf3"

if [[ "${1:-}" == "--fetch-debs" ]]; then
  mkdir -p "$DEBS"
  (cd "$DEBS" && apt-get download $PACKAGES)
  exit 0
fi

KERNELS_ONLY=0
if [[ "${1:-}" == "--kernels" ]]; then
  KERNELS_ONLY=1
  shift
fi
OUTDIR=${1:-build-gpu/report}
mkdir -p "$OUTDIR"
JOBS=$(nproc)

# ---- dependencies: a private prefix from the carried Debian packages -----------
PREFIX=$PWD/build-gpu/deps
if [[ -d "$DEBS" ]] && ls "$DEBS"/*.deb >/dev/null 2>&1; then
  rm -rf "$PREFIX" && mkdir -p "$PREFIX"
  for f in "$DEBS"/*.deb; do dpkg -x "$f" "$PREFIX"; done
  # .pc files name /usr: point them at the prefix.
  sed -i "s|^prefix=/usr|prefix=$PREFIX/usr|" "$PREFIX"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
  export PATH=$PREFIX/usr/bin:$PATH
  export PKG_CONFIG_PATH=$PREFIX/usr/lib/x86_64-linux-gnu/pkgconfig:$PREFIX/usr/share/pkgconfig
  export LD_LIBRARY_PATH=$PREFIX/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  EXTRA_PREFIX="$PREFIX/usr:"
else
  EXTRA_PREFIX=""
fi

TORCH_CMAKE=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share", "cmake"))')
{
  echo "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  nvcc --version | tail -1
  python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)'
  g++ --version | head -1; cmake --version | head -1
} 2>&1 | tee "$OUTDIR/machine.txt"

# ---- build ------------------------------------------------------------------
# The training tests read a corpus; the Debian one may be missing here.
CORPUS=${CDRMIX_TEST_CORPUS:-/usr/share/games/fortunes/fortunes}
[[ -f "$CORPUS" ]] || CORPUS=$PWD/.gpu/fortunes
SHAKESPEARE=${CDRMIX_SHAKESPEARE:-$PWD/.gpu/tinyshakespeare.txt}
export CMAKE_PREFIX_PATH="${EXTRA_PREFIX}$TORCH_CMAKE" # ':'-separated; also read by the out-of-tree plugin test
B=build-gpu/build
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCDRMIX_TEST_CORPUS="$CORPUS" > "$OUTDIR/configure.log" 2>&1 ||
  { tail -30 "$OUTDIR/configure.log"; exit 1; }
grep -E "CDRmix:|Added CUDA NVCC flags" "$OUTDIR/configure.log"
echo "== build"
SECONDS=0
cmake --build $B -j "$JOBS" -- -k 0 > "$OUTDIR/build.log" 2>&1 || { grep -E "error|FAILED" "$OUTDIR/build.log" | head -40; exit 1; }
echo "built in ${SECONDS}s"

echo "== doctor"
$B/bin/cdrmix doctor | tee "$OUTDIR/doctor.txt" || true # a CPU-side problem must not stop the GPU check

echo "== GPU kernel tests (against the CPU kernels)"
$B/bin/cdrmix_tests --gtest_filter='CudaKernels.*' 2>&1 | tee "$OUTDIR/cuda_tests.txt" | grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) *\]|Failure|rel_err|Expected|Which is|y|error" | head -60

if [[ $KERNELS_ONLY == 1 ]]; then
  echo "== GPU bench"
  $B/bin/cdrmix --device cuda bench 2>&1 | tee "$OUTDIR/bench.txt"
  exit 0
fi

echo "== the whole suite on LibTorch $(python3 -c 'import torch; print(torch.__version__)')"
# Passive waiting and a few test processes at a time: each runs its own thread
# pool over every core.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ctest --test-dir $B -j 4 --timeout 300 --output-on-failure > "$OUTDIR/ctest.log" 2>&1 || true
grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|\*\*\*" "$OUTDIR/ctest.log" | head -40
# A crashed C++ test again on its own, with its stack (tests/main.cpp prints it).
crashed=$(grep -oE "[A-Za-z0-9_]+\.[A-Za-z0-9_]+ \((SEGFAULT|Subprocess aborted|Bus error|ILLEGAL)\)" "$OUTDIR/ctest.log" |
  cut -d' ' -f1 | paste -sd: - || true)
if [[ -n "$crashed" ]]; then
  echo "== stacks of the crashed tests ($crashed)"
  $B/bin/cdrmix_tests --gtest_filter="$crashed" 2>&1 | c++filt > "$OUTDIR/crashes.txt" || true
  grep -A40 "stack:" "$OUTDIR/crashes.txt" | cut -c1-200 | head -80 || true
fi

echo "== GPU bench"
$B/bin/cdrmix --device cuda bench 2>&1 | tee "$OUTDIR/bench.txt"

echo "== training cdrmix-small on the GPU, float32 and bf16 autocast"
for mode in none bf16; do
  $B/bin/cdrmix --device cuda run experiments/quickstart.lua --headless --runs-dir build-gpu/runs \
    data.path="$SHAKESPEARE" train.steps=${GPU_TRAIN_STEPS:-300} train.batch_size=64 train.seq_len=512 \
    train.eval_every=100 train.autocast=$mode > "$OUTDIR/train-$mode.jsonl" 2>&1 ||
    { tail -20 "$OUTDIR/train-$mode.jsonl"; exit 1; }
  echo "-- autocast $mode"
  grep -E '"event":"(eval|end)"' "$OUTDIR/train-$mode.jsonl" | tail -5
  grep -m1 -oE '"device_mem(_total)?_mb":[0-9.]+,"device_mem(_total)?_mb":[0-9.]+' "$OUTDIR/train-$mode.jsonl" || true
done
