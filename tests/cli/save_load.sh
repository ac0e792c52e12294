#!/usr/bin/env bash
# save_load.sh CDRMIX WORK_DIR CORPUS: a hand-written loop's model:save folder
# (tests/lua/save_load.lua: a model with a Lua router, also checked through cdrmix.load
# and a weights-only resume of the stock trainer) is a checkpoint the
# command line accepts: `cdrmix eval` reports a finite loss on it and
# `cdrmix generate` samples from it with its tokenizer.
set -u
cdrmix=$1 work=$2 corpus=$3
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work"

"$cdrmix" --threads 1 run tests/lua/save_load.lua data.path="$corpus" out="$work/saved" --headless \
  --runs-dir "$work/runs" || fail "the hand loop's save and load"
out=$("$cdrmix" --threads 1 eval "$work/saved" --data type=text --data path="$corpus" --data tokenizer=char \
  --seq-len 32 --batch-size 4 --batches 2 --json) || fail "cdrmix eval on the saved folder"
echo "$out"
python3 -c 'import json, math, sys; r = json.loads(sys.argv[1]); assert math.isfinite(r["loss"]) and r["loss"] > 0, r' \
  "$out" || fail "eval's loss"
text=$("$cdrmix" --threads 1 generate "$work/saved" --prompt "The " --max-tokens 20 --seed 1) || fail "cdrmix generate"
[ -n "$text" ] || fail "generate printed nothing"
echo "ok: model:save -> cdrmix.load (same logits), cdrmix eval, cdrmix generate"
