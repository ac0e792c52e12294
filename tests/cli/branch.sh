#!/usr/bin/env bash
# branch.sh CDRMIX WORK_DIR CORPUS: `cdrmix branch` continues a finished run
# from its checkpoint at step 3 with the sinkhorn router, as a new run folder
# beside it that records the branch; its steps 4-6 are bit for bit those of a
# run that swapped to sinkhorn at step 3 while it ran (a hot-swap equals a
# branch from a checkpoint at the swap step), with the data found beside the
# original script. A step with no checkpoint and a bad layer are one line each.
set -u
cdrmix=$1 work=$2 corpus=$3
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work/exp"
# The experiment names its data beside itself: the branch runs the run folder's
# copy of the script, and must find the data where the original script is.
cp "$corpus" "$work/exp/corpus.txt"
sed 's|path = "data/fortunes.txt"|path = "corpus.txt"|' tests/lua/sweep_tiny.lua >"$work/exp/tiny.lua"
grep -q 'path = "corpus.txt"' "$work/exp/tiny.lua" || fail "making the experiment"
common=(train.steps=6 train.checkpoint_every=3 --headless)

"$cdrmix" --threads 1 run "$work/exp/tiny.lua" "${common[@]}" --runs-dir "$work/runs" >/dev/null || fail "the run"
run=$(ls -d "$work"/runs/sweep_tiny-*) || fail "no run folder"
"$cdrmix" --threads 1 run "$work/exp/tiny.lua" "${common[@]}" swap.at=3 --runs-dir "$work/swapped" >/dev/null ||
  fail "the run that swaps at step 3"
swapped=$(ls -d "$work"/swapped/sweep_tiny-*) || fail "no swapped run folder"

out=$("$cdrmix" branch "$run" --step 3 --router sinkhorn) || fail "branch: $out"
echo "$out"
branch=$(echo "$out" | tail -n 1 | sed -n 's/^branch: \(\/[^ ]*\)$/\1/p')
[[ -d "$branch" && "$branch" != "$run" && $(dirname "$branch") == "$work/runs" ]] || fail "no branch folder beside the run: $out"

python3 - "$run" "$branch" "$swapped" "$work/exp/tiny.lua" <<'PY' || fail "the branch"
import json, os, sys
run, branch, swapped, script = sys.argv[1:]
c = json.load(open(branch + "/config.json"))
assert c["script"] == script, c["script"]  # the original's name, not the run folder's copy
b = c["branch"]
assert b["of"] == os.path.realpath(run + "/checkpoints/step-000003"), b
assert b["step"] == 3 and b["swap"] == {"layer": "all", "router": {"type": "sinkhorn"}}, b
def records(d):
    return [json.loads(l) for l in open(d + "/metrics.jsonl")]
def losses(d):
    return {r["step"]: r["loss"] for r in records(d) if r.get("event") == "step"}
swaps = [r for r in records(branch) if r.get("event") == "swap"]
assert len(swaps) == 1 and swaps[0]["step"] == 3 and swaps[0]["router"]["type"] == "sinkhorn", swaps
lb, ls, lr = losses(branch), losses(swapped), losses(run)
assert sorted(lb) == [4, 5, 6], sorted(lb)
for s in (4, 5, 6):
    assert lb[s] == ls[s], (s, lb[s], ls[s])  # bit for bit: JSON keeps every digit of a double
assert lr[4] != lb[4], "the router did not change the loss"
assert all(lr[s] == ls[s] for s in (1, 2, 3)), "the swapped run differs before its swap"
print("branch steps 4-6 equal the hot-swapped run's:", [lb[s] for s in (4, 5, 6)])
PY

err=$("$cdrmix" branch "$run" --step 2 --router sinkhorn 2>&1) && fail "a step with no checkpoint branched"
printf '%s\n' "$err" | grep -q "branch: .* has no checkpoint at step 2 (its checkpoints: 3, 6)" || fail "no checkpoint: $err"
err=$("$cdrmix" branch "$run" --step 3 --router sinkhorn --layer first 2>&1) && fail "a bad layer branched"
printf '%s\n' "$err" | grep -q "branch: --layer is a layer id (0-based, as in the records) or all, not 'first'" ||
  fail "bad layer: $err"
err=$("$cdrmix" run "$work/exp/tiny.lua" --branch-swap '{"layer":"all"}' 2>&1) && fail "--branch-swap without --resume ran"
printf '%s\n' "$err" | grep -q "^cdrmix: error: --branch-swap needs --resume" || fail "--branch-swap alone: $err"
echo "ok: cdrmix branch (a branch from a checkpoint equals the hot-swapped run; errors named)"
