#!/usr/bin/env bash
# ctrl_c.sh CDRMIX RUNS_DIR CORPUS
# Ctrl-C during `cdrmix run`: the run stops after the current step with a
# checkpoint and exit code 130; `--resume auto` continues from that step with
# the losses of an uninterrupted run (bitwise; constant schedule so the total
# step count does not matter); a second Ctrl-C quits at once (also 130,
# without waiting for the checkpoint).
set -u
cdrmix=$1 runs=$2 corpus=$3
script=tests/lua/interruptible.lua
rm -rf "$runs"
mkdir -p "$runs"
fail() { echo "FAIL: $*"; echo "--- stderr:"; cat "$runs/err" 2>/dev/null; exit 1; }

# Waits until the run under $runs has written at least $1 step records.
wait_for_steps() {
  for _ in $(seq 1 600); do
    local m
    m=$(ls "$runs"/interruptible-*/metrics.jsonl 2>/dev/null | head -n 1)
    if [ -n "$m" ] && [ "$(grep -c '"event":"step"' "$m")" -ge "$1" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

"$cdrmix" --threads 1 run "$script" data.path="$corpus" train.steps=100000 train.schedule=constant --headless \
  --runs-dir "$runs" >"$runs/out" 2>"$runs/err" &
pid=$!
wait_for_steps 3 || { kill -9 $pid; fail "the run wrote no step records"; }
kill -INT $pid
wait $pid
code=$?
[ $code -eq 130 ] || fail "exit code $code after Ctrl-C, expected 130"
grep -q "interrupted (Ctrl-C) at step [0-9]*; checkpoint .*step-0*[0-9]*; continue with --resume auto" "$runs/err" ||
  fail "no interruption message"
run1=$(ls -d "$runs"/interruptible-* | head -n 1)
step=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$run1/checkpoints/latest/trainer_state.json") ||
  fail "no checkpoint after Ctrl-C"
[ "$step" -ge 3 ] && [ "$step" -lt 100000 ] || fail "checkpoint at step $step"
echo "stopped at step $step with a checkpoint"

sleep 1 # the resumed run gets a run folder with a later time stamp
"$cdrmix" --threads 1 run "$script" data.path="$corpus" train.steps=$((step + 2)) train.schedule=constant \
  --headless --runs-dir "$runs" --resume auto >"$runs/out2" 2>"$runs/err" || fail "the resumed run failed"
run2=$(ls -d "$runs"/interruptible-* | grep -v "^$run1\$" | head -n 1)
sleep 1
"$cdrmix" --threads 1 run "$script" data.path="$corpus" train.steps=$((step + 2)) train.schedule=constant \
  --headless --runs-dir "$runs/whole" >/dev/null 2>"$runs/err" || fail "the uninterrupted run failed"
python3 - "$run2/metrics.jsonl" "$step" "$(ls "$runs"/whole/interruptible-*/metrics.jsonl)" <<'PY' ||
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
k = int(sys.argv[2])
whole = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[3])) if r["event"] == "step"}
resume = [r for r in recs if r["event"] == "resume"]
steps = [(r["step"], r["loss"]) for r in recs if r["event"] == "step"]
assert resume and resume[0]["step"] == k, resume
assert [s for s, _ in steps] == [k + 1, k + 2], steps
assert all(loss == whole[s] for s, loss in steps), (steps, whole)
print(f"resumed at step {k}, ran steps {steps}: the uninterrupted run's losses, bitwise")
PY
  fail "the resumed run did not continue the uninterrupted run"

# A second Ctrl-C while the first one's eval is still running (many eval
# batches make it long) quits at once: 130, no interruption line, no checkpoint.
rm -rf "$runs"/interruptible-*
"$cdrmix" --threads 1 run "$script" data.path="$corpus" train.steps=100000 train.eval_batches=100000 --headless \
  --runs-dir "$runs" >"$runs/out" 2>"$runs/err" &
pid=$!
wait_for_steps 1 || { kill -9 $pid; fail "the second run wrote no step records"; }
kill -INT $pid
for _ in $(seq 1 100); do grep -q "stopping after this step" "$runs/err" && break; sleep 0.05; done
kill -INT $pid
wait $pid
code=$?
[ $code -eq 130 ] || fail "exit code $code after two Ctrl-C, expected 130"
grep -q "interrupted (Ctrl-C) at step" "$runs/err" && fail "the second Ctrl-C waited for the checkpoint"
[ -e "$(ls -d "$runs"/interruptible-*)/checkpoints/latest" ] && fail "a checkpoint was written after the second Ctrl-C"
echo "ctrl_c: ok"
