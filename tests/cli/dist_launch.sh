#!/usr/bin/env bash
# dist_launch.sh CDRMIX SCRIPT_DIR BASE_PORT: multi-process runs over loopback only.
# `cdrmix launch -n 2`, the torchrun and Slurm variables set by hand, a failing
# rank, and the bad rendezvous inputs (port taken, world sizes that disagree,
# master unreachable), each bounded by a short timeout.
set -u
cdrmix=$1 lua=$2 port=$3
fail=0
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
check() { # name expected-exit pattern file
  local name=$1 want=$2 pattern=$3 file=$4 got=$5
  if [ "$got" != "$want" ] || ! grep -Eq -- "$pattern" "$file"; then
    echo "FAIL: $name: exit $got (want $want), output:"; cat "$file"; fail=1
  else
    echo "ok: $name"
  fi
}

timeout 120 "$cdrmix" launch -n 2 --master 127.0.0.1:$port --timeout 30 run "$lua/dist.lua" >"$tmp/launch" 2>&1
check "launch -n 2" 0 "rank 1 of 2 ok" "$tmp/launch" $?

for style in torchrun slurm; do
  p=$((port + 1))
  for r in 0 1; do
    if [ $style = torchrun ]; then vars="RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r"; else vars="SLURM_PROCID=$r SLURM_NTASKS=2 SLURM_LOCALID=$r"; fi
    env $vars MASTER_ADDR=127.0.0.1 MASTER_PORT=$p CDRMIX_DIST_TIMEOUT=30 timeout 120 "$cdrmix" run "$lua/dist.lua" >"$tmp/$style$r" 2>&1 &
  done
  wait %1; a=$?; wait %2; b=$?
  check "$style variables, rank 0" 0 "rank 0 of 2 ok" "$tmp/${style}0" $a
  check "$style variables, rank 1" 0 "rank 1 of 2 ok" "$tmp/${style}1" $b
done

printf 'if cdrmix.dist.rank() == 1 then error("rank 1 gives up") end\ncdrmix.dist.barrier()\n' >"$tmp/fail.lua"
timeout 120 "$cdrmix" launch -n 2 --master 127.0.0.1:$((port + 2)) --timeout 30 run "$tmp/fail.lua" >"$tmp/failing" 2>&1
check "a failing rank stops the others" 1 "rank 1 \(pid [0-9]+\) ended with exit status 1; stopping the other 1 rank" "$tmp/failing" $?

printf 'local n = cdrmix.dist.rank() == 0 and 4 or 8\ncdrmix.dist.all_reduce(cdrmix.zeros({ n }))\n' >"$tmp/mismatch.lua"
timeout 120 "$cdrmix" launch -n 2 --master 127.0.0.1:$((port + 6)) --timeout 30 run "$tmp/mismatch.lua" >"$tmp/mismatch" 2>&1
check "ranks making different calls fail with one line" 1 "cdrmix.dist: the ranks made different calls here \(rank [01]: all_reduce\(Float\[[48]\], sum\)\)" "$tmp/mismatch" $?

python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', $((port + 3)))); s.listen(); time.sleep(30)" &
sleep 1
RANK=0 WORLD_SIZE=2 MASTER_PORT=$((port + 3)) CDRMIX_DIST_TIMEOUT=3 timeout 60 "$cdrmix" run "$lua/dist.lua" >"$tmp/taken" 2>&1
check "port taken" 1 "rank 0 cannot serve the rendezvous on 127.0.0.1:$((port + 3))" "$tmp/taken" $?

RANK=0 WORLD_SIZE=2 MASTER_PORT=$((port + 4)) CDRMIX_DIST_TIMEOUT=5 timeout 60 "$cdrmix" run "$lua/dist.lua" >"$tmp/ws0" 2>&1 &
RANK=1 WORLD_SIZE=3 MASTER_PORT=$((port + 4)) CDRMIX_DIST_TIMEOUT=5 timeout 60 "$cdrmix" run "$lua/dist.lua" >"$tmp/ws1" 2>&1
check "world sizes disagree" 1 "started with world size 3 but rank 0 with 2" "$tmp/ws1" $?
wait %%

RANK=1 WORLD_SIZE=2 MASTER_PORT=$((port + 5)) CDRMIX_DIST_TIMEOUT=3 timeout 60 "$cdrmix" run "$lua/dist.lua" >"$tmp/unreachable" 2>&1
check "master unreachable" 1 "rank 1 cannot reach the rendezvous master 127.0.0.1:$((port + 5)) within 3 s" "$tmp/unreachable" $?
exit $fail
