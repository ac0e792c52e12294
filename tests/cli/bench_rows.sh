#!/usr/bin/env bash
# bench_rows.sh CDRMIX
# Runs `cdrmix bench --quick --only nanogpt,mfu` and checks that rows 4 and 5
# are printed with figures (not how fast they are): row 4 with the Python
# baseline's tokens/s and a ratio when Debian's python3-torch is there, else
# skipped with the reason; then row 4 again with a Python that does not exist,
# which must be reported as skipped, not as a failure; then row 11
# (activation checkpointing) with tokens/s and peak memory on both sides.
set -euo pipefail
cdrmix=$1
fail() { echo "FAIL: $*"; echo "$out"; exit 1; }

out=$("$cdrmix" --threads 1 bench --quick --only nanogpt,mfu 2>&1) || fail "bench exited non-zero"
echo "$out"
row4=$(grep '^4 GPT' <<<"$out") || fail "no row 4"
grep -Eq 'cdrmix [0-9]+ tok/s' <<<"$row4" || fail "row 4 has no cdrmix tokens/s"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  grep -Eq 'python [0-9]+ tok/s +[0-9.]+x python \([0-9]+ params each\)' <<<"$row4" ||
    fail "row 4 has no python tokens/s and ratio with matching parameter counts"
else
  grep -q 'python: skipped .*apt install python3-torch' <<<"$row4" || fail "row 4 is not skipped with the reason"
fi
row5=$(grep '^5 MFU' <<<"$out") || fail "no row 5"
grep -Eq '[0-9.]+ GFLOP/s \([0-9]+ tok/s\) +GEMM [0-9.]+ GFLOP/s +[0-9.]+% of peak' <<<"$row5" ||
  fail "row 5 has no achieved rate, GEMM peak and utilisation"

out=$(CDRMIX_PYTHON=/no/such/python3 "$cdrmix" --threads 1 bench --quick --only nanogpt 2>&1) ||
  fail "bench exited non-zero without python"
grep -Eq '^4 GPT.*python: skipped +/no/such/python3 cannot import torch \(apt install python3-torch\)' <<<"$out" ||
  fail "row 4 is not skipped with the reason when python is missing"

out=$("$cdrmix" --threads 1 bench --quick --only checkpoint 2>&1) || fail "bench --only checkpoint exited non-zero"
echo "$out"
grep -Eq '^11 checkpoint_activations all, cdrmix-small B4 T64 tok/s +all [0-9]+ tok/s +none [0-9]+ tok/s +[0-9.]+x the time per token' \
  <<<"$out" || fail "no row 11 tokens/s"
grep -Eq '^   peak CPU memory of the run +all [0-9.]+ MiB +none [0-9.]+ MiB +0\.[0-9]+x' <<<"$out" ||
  fail "row 11 has no peak memory, or checkpointing did not lower it"
echo "ok"
