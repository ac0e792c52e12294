#!/usr/bin/env bash
# chat.sh CDRMIX WORK_DIR CORPUS
# The fine-tuning path end to end, in miniature: `cdrmix data synth-chat`
# (deterministic, errors), experiments/finetune.lua with a few steps per stage
# (each stage must start from the previous stage's checkpoint: the script
# checks the reloaded weights reproduce the previous val loss), `cdrmix
# eval-chat` on the last checkpoint, and a scripted `cdrmix chat` session
# through a pipe (replies, /tool, /save, /reset, unknown commands, a bad tools file).
set -u
cdrmix=$1 work=$2 corpus=$3
rm -rf "$work"
mkdir -p "$work/chat"
fail() { echo "FAIL: $*"; exit 1; }

for kind in instruct tools reasoning; do
  "$cdrmix" data synth-chat --kind "$kind" --n 60 --seed 3 -o "$work/chat/${kind}_train.jsonl" >/dev/null ||
    fail "synth-chat $kind"
  "$cdrmix" data synth-chat --kind "$kind" --n 4 --seed 3 --split test -o "$work/chat/${kind}_test.jsonl" >/dev/null ||
    fail "synth-chat $kind test"
done
"$cdrmix" data synth-chat --kind tools --n 60 --seed 3 -o "$work/again.jsonl" >/dev/null || fail "synth-chat again"
cmp -s "$work/again.jsonl" "$work/chat/tools_train.jsonl" || fail "the same seed wrote another file"
[ "$(wc -l < "$work/chat/tools_train.jsonl")" -eq 60 ] || fail "not 60 conversations"
err=$("$cdrmix" data synth-chat --kind tool -o "$work/x.jsonl" 2>&1 >/dev/null) && fail "an unknown kind was accepted"
echo "$err" | head -n 1 | grep -q "'tool' is not a kind (tools, instruct, reasoning); did you mean 'tools'?" ||
  fail "unclear error: $err"

out=$("$cdrmix" --threads 1 run experiments/finetune.lua chat_dir="$work/chat" pretrain.path="$corpus" \
  stages.pretrain.steps=3 stages.instruct.steps=3 stages.tools.steps=3 stages.reasoning.steps=3 \
  train.batch_size=2 train.seq_len=64 train.log_every=1 eval.limit=2 eval.max_tokens=8 \
  --headless --runs-dir "$work/runs" 2>&1) || { echo "$out"; fail "finetune.lua failed"; }
for stage in instruct tools reasoning; do
  echo "$out" | grep -Eq "^stage $stage starts from .*/finetune-[a-z]+-[0-9-]+/checkpoints/latest \(previous val loss [0-9.]+, reproduced\)$" ||
    { echo "$out"; fail "stage $stage did not start from the previous checkpoint"; }
done
echo "$out" | grep -Eq "^after tools +tools +tool-call validity [0-9.]+ +answer accuracy [0-9.]+ \(. of 2\)$" ||
  { echo "$out"; fail "no measurement after the tools stage"; }
for stage in pretrain instruct tools reasoning; do
  [ "$(ls -d "$work"/runs/finetune-$stage-* | wc -l)" -eq 1 ] || fail "not one run folder for stage $stage"
done
# The measurements are logged to the script's own run folder: 4 stages x 3 kinds.
[ "$(grep -c '"measure":"chat"' "$work"/runs/finetune-2*/metrics.jsonl)" -eq 12 ] || fail "the logged measurements"
# The chat stages' step records count the targets with loss, fewer than the tokens read (a window
# inside a long tools declaration has none).
python3 - "$work"/runs/finetune-tools-*/metrics.jsonl <<'PY' || fail "loss_tokens in the tools stage's records"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
steps = [r for r in steps if r.get("event") == "step"]
assert len(steps) == 3, steps
assert all(0 <= r["loss_tokens"] < 2 * 64 for r in steps) and sum(r["loss_tokens"] for r in steps) > 0, steps
PY
ckpt=$(ls -d "$work"/runs/finetune-reasoning-*/checkpoints/latest)

out=$("$cdrmix" --threads 1 eval-chat "$ckpt" --data "$work/chat/tools_test.jsonl" --max-tokens 8 --json) ||
  fail "eval-chat failed"
python3 - "$out" <<'PY' || fail "eval-chat result: $out"
import json, sys
r = json.loads(sys.argv[1])
assert r["conversations"] == 4 and r["expect_calls"] == 4, r
assert 0 <= r["tool_call_validity"] <= 1 and 0 <= r["answer_accuracy"] <= 1, r
assert r["valid_calls"] == round(r["tool_call_validity"] * 4), r
PY
err=$("$cdrmix" eval-chat "$ckpt" --data "$work/chat/no_such.jsonl" 2>&1 >/dev/null) && fail "a missing file was accepted"
echo "$err" | head -n 1 | grep -q "no_such.jsonl" || fail "unclear error: $err"

python3 -c 'import json, sys; json.dump([r for r in json.loads(open(sys.argv[1]).readline())["tools"]], open(sys.argv[2], "w"))' \
  "$work/chat/tools_train.jsonl" "$work/tools.json" || fail "writing tools.json"
session=$(printf '%s\n' "What is 2 + 3?" '/tool {"result": 5}' "/save $work/saved.jsonl" "/frobnicate" "/reset" \
  "/save $work/after_reset.jsonl" "Capital of Peru?" |
  "$cdrmix" --threads 1 chat "$ckpt" --tools "$work/tools.json" --system "Be brief." --max-tokens 12 2>&1) ||
  { echo "$session"; fail "chat session failed"; }
echo "$session"
echo "$session" | grep -qx "(saved 5 messages to $work/saved.jsonl)" || fail "/save after two turns"
echo "$session" | grep -qx "(unknown command /frobnicate: /reset, /save FILE, /tool TEXT, /quit)" || fail "unknown command"
echo "$session" | grep -qx "(conversation reset)" || fail "/reset"
echo "$session" | grep -qx "(saved 1 messages to $work/after_reset.jsonl)" || fail "/reset kept more than the system message"
python3 - "$work/saved.jsonl" <<'PY' || fail "the saved conversation"
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant", "tool", "assistant"], r
assert r["messages"][3]["content"] == '{"result": 5}', r
assert [t["name"] for t in r["tools"]] == ["calculator", "convert", "lookup"], r
PY
echo '[{"name": "a", "parameters": {"type": 7}}]' > "$work/bad_tools.json"
err=$(echo hi | "$cdrmix" chat "$ckpt" --tools "$work/bad_tools.json" 2>&1 >/dev/null) && fail "a bad tools file was accepted"
echo "$err" | head -n 1 | grep -q "bad_tools.json: tools\[0\] ('a'): its 'parameters' is not a JSON Schema" ||
  fail "unclear error: $err"
echo "chat: ok"
