#!/usr/bin/env bash
# eval_generate.sh CDRMIX RUNS_DIR CORPUS
# Trains a tiny model for a few steps, then checks `cdrmix eval` (loss and
# perplexity, the run's data config by default, key=value data settings,
# `auto`) and `cdrmix generate` (reproducible with --seed, prompt echoed,
# --max-tokens respected) on its checkpoint, and their errors; then
# `cdrmix inspect` (each token's experts, the experts' tokens over a sample).
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
# inspect: each token's experts per MoE layer (cdrmix-tiny: layer 1 of 2, 4 experts, top-2), and the
# experts' tokens over the val split: every token fills top_k slots.
out=$("$cdrmix" --threads 1 inspect "$run" --text "The cat." --json --specialisation --batches 2) ||
  fail "inspect failed"
python3 - "$out" <<'PY' || fail "inspect result"
import json, sys
r = json.loads(sys.argv[1])
routing = r["routing"]
assert routing["moe_layers"] == [1] and routing["num_experts"] == 4, routing["moe_layers"]
assert "".join(t["text"] for t in routing["tokens"]) == "The cat.", routing["tokens"]
for t in routing["tokens"]:
    (choices,) = t["layers"]
    assert len(choices) == 2 and len({c["expert"] for c in choices}) == 2, t
    assert all(0 <= c["expert"] < 4 and 0 < c["prob"] <= 1 for c in choices), t
    assert choices[0]["prob"] >= choices[1]["prob"], t  # top-k order
in_text = r["experts_in_text"][0]["experts"]
assert sum(x["count"] for e in in_text for x in e["tokens"]) == 2 * len("The cat."), in_text
spec = r["specialisation"]
(layer,) = spec["layers"]
assert sum(e["tokens"] for e in layer["experts"]) == 2 * spec["tokens"], spec  # 2 batches x 4 x 32, top-2
assert all(sum(e["classes"].values()) == e["tokens"] for e in layer["experts"]), layer
PY
"$cdrmix" --threads 1 inspect "$run" --text "The cat." | grep -E "^'T' +e[0-3] 0\.[0-9]{2}, e[0-3] 0\.[0-9]{2}" ||
  fail "inspect's table"
echo "eval_generate: ok (eval, generate, inspect)"
