#!/usr/bin/env bash
# bench_rows_1_3.sh CDRMIX
# Runs `cdrmix bench --quick --only gemm,wkv,moe` and checks that rows 1-3 are
# printed with figures, baselines and ratios (not how fast they are), and that
# an unknown row name is one clear error listing the rows.
set -euo pipefail
cdrmix=$1
fail() { echo "FAIL: $*"; echo "$out"; exit 1; }

out=$("$cdrmix" --threads 1 bench --quick --only gemm,wkv,moe 2>&1) || fail "bench exited non-zero"
echo "$out"
grep -Eq '^1 GEMM float32 peak .* [0-9.]+ GFLOP/s' <<<"$out" || fail "no row 1"
for op in WKV-6 WKV-7; do
  grep -Eq "^2 $op fwd\+bwd B8 T128 C512 fp32 +[0-9.]+ ms +reference [0-9]+ ms +[0-9.]+x faster" <<<"$out" ||
    fail "no row 2 for $op"
  grep -Eq "^  $op achieved rate +[0-9.]+ GFLOP/s +GEMM [0-9.]+ GFLOP/s +[0-9.]+% of peak" <<<"$out" ||
    fail "no achieved rate for $op"
done
grep -Eq "^2 WKV-7 chunked fwd\+bwd B8 T128 C512 fp32 +[0-9.]+ ms +recurrent [0-9.]+ ms +[0-9.]+x faster" <<<"$out" ||
  fail "no chunked row for WKV-7"
grep -Eq "^  WKV-7 chunked achieved rate +[0-9.]+ GFLOP/s +GEMM [0-9.]+ GFLOP/s +[0-9.]+% of peak" <<<"$out" ||
  fail "no achieved rate for chunked WKV-7"
grep -Eq '^3 MoE E8 k2 C512 N1024 fwd\+bwd +sparse [0-9.]+ ms +dense \(all experts\) [0-9.]+ ms +[0-9.]+x the dense time' \
  <<<"$out" || fail "no row 3"

if out=$("$cdrmix" bench --only nope 2>&1); then fail "an unknown row was accepted"; fi
grep -q "bench: unknown row 'nope' in --only (rows: gemm, wkv, moe, nanogpt, mfu, generation, data, gui, dist, lua, checkpoint, bf16, blocks)" \
  <<<"$out" || fail "no clear error for an unknown row"
echo "ok"
