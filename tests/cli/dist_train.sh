#!/usr/bin/env bash
# dist_train.sh CDRMIX LUA_DIR CORPUS BASE_PORT: data parallelism through the
# host, two ranks over loopback only, every wait bounded:
#   - hand-written loops (cdrmix.dist.data_parallel and plain all_reduce) equal one process;
#   - the stock trainer: aggregated records, rank 0 alone writes the run folder;
#     with activation checkpointing, the same losses bit for bit;
#   - a rank killed with SIGKILL mid-run: the other exits non-zero within the
#     timeout naming it and the last checkpoint, which stays intact;
#   - --resume auto finishes at the same world size and at another;
#   - expert parallelism: each rank holds half the experts; the checkpoint is
#     the whole model (`cdrmix eval` in one process) and resumes in one process.
set -u
cdrmix=$1 lua=$2 corpus=$3 port=$4
fail=0
tmp=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
verdict() { # name exit-status-of-the-condition
  if [ "$2" = 0 ]; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}
check() { # name expected-exit pattern file got
  local name=$1 want=$2 pattern=$3 file=$4 got=$5
  if [ "$got" != "$want" ] || ! grep -Eq -- "$pattern" "$file"; then
    echo "FAIL: $name: exit $got (want $want), output:"; tail -n 30 "$file"; fail=1
  else
    echo "ok: $name"
  fi
}
runs=$tmp/runs
common=(data.path="$corpus" --headless --runs-dir "$runs")

timeout 300 "$cdrmix" launch -n 2 --master 127.0.0.1:$port --timeout 60 run "$lua/dist_hand_loop.lua" \
  "${common[@]}" >"$tmp/hand" 2>&1
check "hand-written data-parallel loops equal one process" 0 "dist_hand_loop: rank 1 of 2 ok" "$tmp/hand" $?

timeout 300 "$cdrmix" launch -n 2 --master 127.0.0.1:$((port + 1)) --timeout 60 run "$lua/dist_trainer.lua" \
  "${common[@]}" >"$tmp/trainer" 2>&1
check "stock trainer on 2 ranks" 0 "dist_trainer: rank 1 of 2 ok, 6 steps to step 6" "$tmp/trainer" $?
folders=$(ls -d "$runs"/dist_trainer-* 2>/dev/null | wc -l)
steps=$(cat "$runs"/dist_trainer-*/metrics.jsonl 2>/dev/null | grep -c '"event":"step".*"world_size":2')
[ "$folders" = 1 ] && [ "$steps" = 6 ]
verdict "rank 0 alone writes the run folder ($folders folder, $steps step records of world size 2)" $?

# Activation checkpointing under data parallelism: every layer recomputed in
# backward, the gradients all-reduced as before: the same losses, bit for bit.
ckpt_runs=$tmp/ckpt_runs
timeout 300 "$cdrmix" launch -n 2 --master 127.0.0.1:$((port + 5)) --timeout 60 run "$lua/dist_trainer.lua" \
  data.path="$corpus" train.checkpoint_activations=all --headless --runs-dir "$ckpt_runs" >"$tmp/ckpt" 2>&1
check "stock trainer on 2 ranks with every layer's activations checkpointed" 0 \
  "dist_trainer: rank 1 of 2 ok, 6 steps to step 6" "$tmp/ckpt" $?
python3 - "$runs"/dist_trainer-*/metrics.jsonl "$ckpt_runs"/dist_trainer-*/metrics.jsonl "$ckpt_runs"/dist_trainer-*/config.json <<'PY'
import json, sys
losses = lambda f: [r["loss"] for r in map(json.loads, open(f)) if r.get("event") == "step"]
plain, ckpt = losses(sys.argv[1]), losses(sys.argv[2])
assert json.load(open(sys.argv[3]))["train"]["checkpoint_activations"] == "all"
assert len(plain) == 6 and plain == ckpt, (plain, ckpt)
PY
verdict "... the same 6 losses as without checkpointing, bit for bit" $?

ep_runs=$tmp/ep_runs
EXPERT_PARALLEL=2 timeout 300 "$cdrmix" launch -n 2 --master 127.0.0.1:$((port + 4)) --timeout 60 run \
  "$lua/dist_trainer.lua" data.path="$corpus" --headless --runs-dir "$ep_runs" >"$tmp/ep" 2>&1
check "stock trainer on 2 ranks with the experts split over them" 0 "dist_trainer: rank 1 of 2 ok, 6 steps to step 6" \
  "$tmp/ep" $?
here=$(grep -o 'rank 0 of 2 ok.*, [0-9]* parameters here' "$tmp/ep" | grep -o '[0-9]* parameters' | cut -d' ' -f1)
whole=$(grep -o 'rank 0 of 2 ok.*, [0-9]* parameters here' "$tmp/trainer" | grep -o '[0-9]* parameters' | cut -d' ' -f1)
[ -n "$here" ] && [ -n "$whole" ] && [ "$here" -lt "$whole" ]
verdict "each rank holds part of the experts ($here of $whole parameters)" $?
"$cdrmix" --threads 1 eval "$(ls -d "$ep_runs"/dist_trainer-*)" --batches 2 >"$tmp/ep_eval" 2>&1
check "cdrmix eval of the expert-parallel checkpoint in one process" 0 "loss" "$tmp/ep_eval" $?
EXPERT_PARALLEL=2 timeout 300 "$cdrmix" run --resume auto "$lua/dist_trainer.lua" data.path="$corpus" \
  train.steps=8 --headless --runs-dir "$ep_runs" >"$tmp/ep_resume" 2>&1
check "... and it resumes in one process holding every expert" 0 "rank 0 of 1 ok, 2 steps to step 8" "$tmp/ep_resume" $?

# SIGKILL rank 1 once the run has a checkpoint; rank 0 must stop by itself within the timeout.
kill_runs=$tmp/kill
p=$((port + 2))
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$p CDRMIX_DIST_TIMEOUT=20 \
    "$cdrmix" run "$lua/dist_trainer.lua" data.path="$corpus" train.steps=5000 train.checkpoint_every=10 \
    train.keep_checkpoints=2 train.eval_every=0 --headless --runs-dir "$kill_runs" >"$tmp/kill$r" 2>&1 &
  pid[$r]=$!
done
for _ in $(seq 600); do
  ls -d "$kill_runs"/dist_trainer-*/checkpoints/step-000010 >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 0.3
kill -9 "${pid[1]}"
start=$(date +%s)
for _ in $(seq 400); do kill -0 "${pid[0]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${pid[0]}" 2>/dev/null && kill -9 "${pid[0]}"
wait "${pid[0]}"
rc=$?
took=$(($(date +%s) - start))
[ $rc -ne 0 ] && [ $took -le 30 ]
verdict "SIGKILL of rank 1: rank 0 exits non-zero ($rc) within the timeout (${took} s)" $?
check "... naming rank 1 and the last checkpoint" 1 \
  "rank 1 is gone .*the last checkpoint is .*/checkpoints/step-[0-9]+" "$tmp/kill0" 1
last=$(readlink -f "$kill_runs"/dist_trainer-*/checkpoints/latest)
[ -f "$last/model.safetensors" ] && [ -f "$last/optimizer.pt" ] && grep -q '"data_positions"' "$last/trainer_state.json"
verdict "the last checkpoint ($last) is intact" $?
at=$(basename "$last" | sed 's/step-0*//')

timeout 300 "$cdrmix" launch -n 2 --master 127.0.0.1:$((port + 3)) --timeout 60 run --resume auto "$lua/dist_trainer.lua" \
  data.path="$corpus" train.steps=$((at + 6)) --headless --runs-dir "$kill_runs" >"$tmp/resume2" 2>&1
check "--resume auto on 2 ranks finishes" 0 "rank 0 of 2 ok, 6 steps to step $((at + 6))" "$tmp/resume2" $?

timeout 300 "$cdrmix" run --resume auto "$lua/dist_trainer.lua" data.path="$corpus" train.steps=$((at + 10)) \
  --headless --runs-dir "$kill_runs" >"$tmp/resume1" 2>&1
check "--resume auto on 1 rank continues the 2-rank run" 0 "rank 0 of 1 ok, 4 steps to step $((at + 10))" "$tmp/resume1" $?
exit $fail
