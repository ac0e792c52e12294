#!/usr/bin/env bash
# eval_generate.sh CDRMIX RUNS_DIR CORPUS
# Trains a tiny model for a few steps, then checks `cdrmix eval` (loss and
# perplexity, the run's data config by default, key=value data settings,
# `auto`) and `cdrmix generate` (reproducible with --seed, prompt echoed,
# --max-tokens respected) on its checkpoint, and their errors.
set -u
cdrmix=$1 runs=$2 corpus=$3
rm -rf "$runs"
fail() { echo "FAIL: $*"; exit 1; }

"$cdrmix" --threads 1 run tests/lua/interruptible.lua data.path="$corpus" train.steps=30 --headless \
  --runs-dir "$runs" >/dev/null || fail "training the tiny model failed"
run=$(ls -d "$runs"/interruptible-* | head -n 1)

out=$("$cdrmix" --threads 1 eval "$run" --json --batches 4) || fail "eval on the run folder failed"
echo "$out"
python3 - "$out" <<'PY' || fail "eval result"
import json, math, sys
r = json.loads(sys.argv[1])
assert r["step"] == 30 and r["split"] == "val" and r["tokens"] == 4 * 4 * 32, r  # the run's batch_size and seq_len
assert abs(r["perplexity"] - math.exp(r["loss"])) < 1e-6 * r["perplexity"], r
assert 0 < r["loss"] < 4.0, r  # below a uniform guess over the ~90-character vocabulary (ln 90 = 4.5)
PY
"$cdrmix" --threads 1 eval auto --runs-dir "$runs" --data val_fraction=0.2 --split train --batch-size 2 \
  --seq-len 16 --batches 2 | grep -E "^train: loss [0-9.]+, perplexity [0-9.]+ over 64 tokens" ||
  fail "eval auto with key=value data settings"
err=$("$cdrmix" eval "$run" --data path=/no/such/corpus.txt 2>&1 >/dev/null) && fail "eval on a missing corpus succeeded"
echo "$err" | head -n 1 | grep -q "no text files at '/no/such/corpus.txt'" || fail "unclear error: $err"
err=$("$cdrmix" eval "$runs/nothing" 2>&1 >/dev/null) && fail "eval of a missing checkpoint succeeded"
echo "$err" | head -n 1 | grep -q "checkpoint '.*nothing' does not exist" || fail "unclear error: $err"

gen() { "$cdrmix" --threads 1 generate "$run/checkpoints/latest" --prompt "The " --max-tokens 40 "$@"; }
a=$(gen --seed 3 --temperature 0.8 --top-k 20) || fail "generate failed"
b=$(gen --seed 3 --temperature 0.8 --top-k 20) || fail "generate failed"
echo "sample: $a"
[ "$a" = "$b" ] || fail "the same seed gave different text"
case "$a" in "The "*) ;; *) fail "the prompt is not echoed first" ;; esac
[ "$(printf '%s' "$a" | python3 -c 'import sys; print(len(sys.stdin.read()))')" -le 44 ] || fail "more than 40 tokens"
gen --temperature 0 --top-p 0.5 >/dev/null || fail "greedy generation failed"
err=$("$cdrmix" generate "$run" --prompt "$(printf '\x01')" 2>&1 >/dev/null) &&
  fail "a prompt outside the vocabulary was accepted"
echo "$err" | head -n 1 | grep -q "cannot be encoded by the checkpoint's tokenizer" || fail "unclear error: $err"
echo "eval_generate: ok"
