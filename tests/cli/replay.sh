#!/usr/bin/env bash
# replay.sh CDRMIX WORK_DIR CORPUS: a short finished run (one thread) replays
# bit for bit, whole and its first steps (--steps); a changed plugin file (its
# recorded CRC-32C altered) and another thread count are named; a recorded loss
# that differs is found at its step with exit status 1; a folder that is not a
# run is one line.
set -u
cdrmix=$1 work=$2 corpus=$3
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work"

"$cdrmix" --threads 1 run tests/lua/sweep_tiny.lua data.path="$corpus" train.steps=6 --headless \
  --runs-dir "$work/runs" > /dev/null || fail "the run"
run=$(ls -d "$work"/runs/sweep_tiny-*) || fail "no run folder"
python3 - "$run" <<'PY' || fail "what the run folder records"
import json, sys
c = json.load(open(sys.argv[1] + "/config.json"))
e = c["environment"]
assert e["threads"] == 1 and e["libtorch"] and e["device"] == "cpu" and e["torch_seed"] == 0 and e["cwd"], e
p = json.load(open(sys.argv[1] + "/plugins.json"))
assert p and all(len(x["crc32c"]) == 8 and x["size"] > 0 for x in p), p
PY

out=$("$cdrmix" replay "$run" -o "$work/replay-all") || fail "replay: $out"
echo "$out"
echo "$out" | grep -q "^match: the train loss of all 6 steps" || fail "a whole replay did not match"
out=$("$cdrmix" replay "$run" --steps 3 -o "$work/replay-3") || fail "replay --steps 3: $out"
echo "$out" | grep -q "^match: the train loss of all 3 steps" || fail "replay --steps 3: $out"

# A changed plugin: the run's record of one plugin file no longer matches the file loaded now.
cp -r "$run" "$work/changed"
python3 - "$work/changed/plugins.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
topk = [x for x in p if x["name"] == "topk"][0]
topk["crc32c"] = "%08x" % (int(topk["crc32c"], 16) ^ 1)
json.dump(p, open(sys.argv[1], "w"))
PY
out=$("$cdrmix" replay "$work/changed" --steps 2 -o "$work/replay-changed") || fail "replay of the changed record: $out"
echo "$out"
echo "$out" | grep -q "plugin topk (.*topk.*\.so): file changed: CRC-32C" || fail "the changed plugin was not named"
out=$("$cdrmix" --threads 2 replay "$run" --steps 2 -o "$work/replay-threads")
echo "$out" | grep -q "threads: 1 recorded, 2 now" || fail "another thread count was not named: $out"

# A loss that differs from the replay's: found at its step, exit status 1.
cp -r "$run" "$work/edited"
python3 - "$work/edited/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
for r in lines:
    if r.get("event") == "step" and r["step"] == 4: r["loss"] = r["loss"] * (1 + 2 ** -40)
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in lines))
PY
out=$("$cdrmix" replay "$work/edited" -o "$work/replay-edited") && fail "an edited curve matched"
echo "$out"
echo "$out" | grep -q "^DIFFERS: step 4: train loss" || fail "the differing step was not named"

err=$("$cdrmix" replay "$work/runs" 2>&1) && fail "a folder that is not a run was replayed"
printf '%s\n' "$err" | head -n 1 | grep -q "replay: .*config.json: cannot read" || fail "not a run: $err"
echo "ok: cdrmix replay (bitwise match, --steps, a changed plugin and thread count named, a differing step found)"
