#!/usr/bin/env bash
# Fuzzes the parsers of files a user hands over (tests/fuzz/, docs/reliability.md).
# Builds the libFuzzer harnesses with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer into build-fuzz/, then for each target:
#   1. replays its seeds (tests/fuzz/corpus/TARGET) and the inputs of bugs found
#      before (tests/fuzz/regressions/TARGET), each once;
#   2. fuzzes it for N seconds, growing a working corpus in build-fuzz/corpus/TARGET
#      (kept between runs, never in the source tree).
# Run without TARGETs, it first runs the parsers' unit tests built the same way
# (build-fuzz/sanitized_parser_tests: tests/unit/test_fuzz_findings.cpp).
#   scripts/fuzz.sh [TARGET...] [--seconds N]     (default: every target, 60 s each)
# Exit status: 0 when nothing was found; 1 on any crash, sanitizer report, leak,
# timeout or uncaught exception (the input is saved in build-fuzz/artifacts/TARGET
# until the next run; replay it with build-fuzz/fuzz_TARGET FILE); 77 (skip) when clang or its
# libFuzzer runtime is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(safetensors torch_save zip_bounds checkpoint_json yaml_config tokenizer_file jsonl bin_data chat)
seconds=60
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
builds=()
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${ALL_TARGETS[@]}")
  builds=(sanitized_parser_tests)
fi
for t in "${targets[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

# A harness needs clang with the fuzzer, address and undefined runtimes (Debian: clang, libclang-rt-14-dev).
CXX=${FUZZ_CXX:-clang++}
mkdir -p build-fuzz
probe=build-fuzz/probe
if ! command -v "$CXX" >/dev/null ||
   ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }' |
     "$CXX" -x c++ -fsanitize=fuzzer,address,undefined - -o "$probe" 2>/dev/null; then
  echo "fuzz: skipped: $CXX with libFuzzer and the sanitizer runtimes is not installed (scripts/install-deps.sh installs them)"
  exit 77
fi
rm -f "$probe"

# As scripts/build.sh: ccache keys relative to the checkout, so another clone reuses them.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
generator=()
command -v ninja >/dev/null && [[ ! -f build-fuzz/Makefile ]] && generator=(-G Ninja)
cmake -S tests/fuzz -B build-fuzz "${generator[@]}" -DCMAKE_CXX_COMPILER="$CXX" >/dev/null
cmake --build build-fuzz -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  --target "${targets[@]/#/fuzz_}" "${builds[@]}"

# One thread per harness (LibTorch would start a pool per process); every
# sanitizer report is fatal and has a stack; a leak inside LibTorch itself is
# not ours to fix (tests/fuzz/lsan.supp).
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Inputs beyond 8 KiB find nothing small ones don't, and cost time; -rss_limit_mb also
# caps any single allocation, so a parser that believes a header's size is caught.
FUZZ_FLAGS=(-max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

failed=()
if [[ ${#builds[@]} -gt 0 ]]; then
  if build-fuzz/sanitized_parser_tests >build-fuzz/sanitized_parser_tests.log 2>&1; then
    echo "fuzz: parser unit tests clean under ASan+UBSan: $(grep -E '^\[  PASSED  \]' build-fuzz/sanitized_parser_tests.log)"
  else
    echo "fuzz: the parser unit tests fail under ASan+UBSan (build-fuzz/sanitized_parser_tests.log):" >&2
    grep -E 'FAILED|ERROR|runtime error|SUMMARY' build-fuzz/sanitized_parser_tests.log | tail -n 8 >&2
    failed+=(sanitized_parser_tests)
  fi
fi
printf '%-15s %8s %12s %8s %8s %8s %8s\n' target replayed executions exec/s seconds corpus crashes
for t in "${targets[@]}"; do
  bin=build-fuzz/fuzz_$t
  work=build-fuzz/corpus/$t
  artifacts=build-fuzz/artifacts/$t
  log=build-fuzz/fuzz_$t.log
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  seeds=(tests/fuzz/corpus/$t)
  [[ -d tests/fuzz/regressions/$t ]] && seeds+=(tests/fuzz/regressions/$t)

  asan=$ASAN_OPTIONS

  # 1. Replay: every seed and past finding, once each.
  mapfile -t files < <(find "${seeds[@]}" -type f | sort)
  if ! ASAN_OPTIONS=$asan "$bin" "${FUZZ_FLAGS[@]}" -artifact_prefix="$artifacts/" "${files[@]}" >"$log" 2>&1; then
    echo "fuzz: $t: a seed or regression input fails (build-fuzz/fuzz_$t.log):" >&2
    grep -E 'ERROR|runtime error|Running:|what\(\)' "$log" | tail -n 6 >&2
    failed+=("$t")
    continue
  fi

  # 2. Fuzz: the working corpus first (new inputs go there), the seeds after it.
  start=$(date +%s)
  status=0
  ASAN_OPTIONS=$asan "$bin" "${FUZZ_FLAGS[@]}" -max_total_time="$seconds" -artifact_prefix="$artifacts/" \
    "$work" "${seeds[@]}" >>"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  crashes=$(find "$artifacts" -type f | wc -l)
  printf '%-15s %8s %12s %8s %8s %8s %8s\n' "$t" "${#files[@]}" "${runs:-?}" "${rate:-?}" "$elapsed" \
    "$(find "$work" -type f | wc -l)" "$crashes"
  if [[ $status -ne 0 || $crashes -ne 0 ]]; then
    echo "fuzz: $t: found a failing input, saved in $artifacts/ (log: $log):" >&2
    grep -E 'ERROR|runtime error|what\(\)|SUMMARY' "$log" | tail -n 6 >&2
    failed+=("$t")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s) clean: seeds and regressions replayed, ${seconds} s of fuzzing each"
