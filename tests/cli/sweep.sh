#!/usr/bin/env bash
# sweep.sh CDRMIX WORK_DIR CORPUS: a 2x2 `cdrmix sweep` of a tiny script
# (experts x router), two runs at a time: summary.csv has 4 rows whose figures
# are the runs' own metrics.jsonl records; then a grid with one point that
# fails (an unknown router): its row names the failure, the other point still
# runs, and the exit status is non-zero; then two seeds of one point: each
# run starts LibTorch's generator at its seed (its initial weights differ), so
# the spread over seeds is not zero.
set -u
cdrmix=$1 work=$2 corpus=$3
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work"

start=$(date +%s.%N)
"$cdrmix" --threads 2 sweep tests/lua/sweep_tiny.lua data.path="$corpus" model.num_experts=2,4 \
  model.router.type=topk,sinkhorn --parallel 2 -o "$work/grid" || fail "the 2x2 sweep"
echo "2x2 sweep wall time: $(echo "$(date +%s.%N) - $start" | bc) s"
python3 - "$work/grid" <<'PY' || fail "the 2x2 table"
import csv, glob, json, math, os, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/summary.csv")))
assert len(rows) == 4, rows
assert [(r["model.num_experts"], r["model.router.type"]) for r in rows] == \
    [("2", "topk"), ("2", "sinkhorn"), ("4", "topk"), ("4", "sinkhorn")], rows
for i, r in enumerate(rows, 1):
    assert r["status"] == "ok" and r["run"] == "sweep_tiny" and r["seeds_ok"] == "1", r
    runs = glob.glob(f"{d}/point-{i:03d}/sweep_tiny-*/metrics.jsonl")
    assert len(runs) == 1, runs
    recs = [json.loads(l) for l in open(runs[0])]
    vals = [x["val_loss"] for x in recs if x.get("event") == "eval"]
    end = [x for x in recs if x.get("event") == "end"][-1]
    last_moe = [x for x in recs if x.get("event") == "step" and "moe" in x][-1]["moe"]
    experts = int(r["model.num_experts"])
    assert all(len(m["tokens_per_expert"]) == experts for m in last_moe), "the override reached the model"
    close = lambda a, b: math.isclose(float(a), b, rel_tol=1e-8, abs_tol=1e-12)
    assert close(r["final_val_loss_mean"], vals[-1]) and close(r["best_val_loss_mean"], min(vals)), (r, vals)
    assert close(r["tokens_per_s_mean"], end["tokens_per_s"]), (r, end)
    assert close(r["load_cv_mean"], sum(m["load_cv"] for m in last_moe) / len(last_moe)), (r, last_moe)
    assert close(r["dead_experts_mean"], sum(m["dead_experts"] for m in last_moe)), (r, last_moe)
md = open(f"{d}/summary.md").read().splitlines()
assert len(md) == 6 and md[0].startswith("| model.num_experts | model.router.type | run |"), md
print("2x2 table ok:", len(rows), "rows match the runs' metrics")
PY

"$cdrmix" --threads 1 sweep tests/lua/sweep_tiny.lua data.path="$corpus" model.router.type=topk,nosuch \
  -o "$work/failing" > "$work/failing.out" 2>&1 && fail "a sweep with a failing run exited 0"
cat "$work/failing.out"
python3 - "$work/failing" <<'PY' || fail "the failing sweep's table"
import csv, sys
rows = list(csv.DictReader(open(f"{sys.argv[1]}/summary.csv")))
assert len(rows) == 2, rows
assert rows[0]["status"] == "ok" and rows[0]["final_val_loss_mean"] != "", rows[0]
assert rows[1]["model.router.type"] == "nosuch" and rows[1]["status"].startswith("failed: exit status 1"), rows[1]
PY
grep -q "unknown router 'nosuch'" "$work/failing/point-002/output.log" || fail "the failed run's output log"

"$cdrmix" --threads 2 sweep tests/lua/sweep_tiny.lua data.path="$corpus" --seeds 2 --parallel 2 -o "$work/seeds" \
  >/dev/null || fail "the 2-seed sweep"
python3 - "$work/seeds" <<'PY' || fail "the 2-seed sweep's table"
import csv, glob, json, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/summary.csv")))
assert len(rows) == 1 and rows[0]["seeds_ok"] == "2", rows
for s in (1, 2):
    [cfg] = glob.glob(f"{d}/point-001-seed-{s}/sweep_tiny-*/config.json")
    c = json.load(open(cfg))
    assert c["environment"]["torch_seed"] == s and f"train.seed={s}" in c["overrides"], c
assert float(rows[0]["final_val_loss_std"]) > 0, rows[0]
print("2 seeds ok: val loss spread", rows[0]["final_val_loss_std"])
PY

err=$("$cdrmix" sweep tests/lua/sweep_tiny.lua model.num_experts -o "$work/bad" 2>&1) && fail "a malformed axis was accepted"
printf '%s\n' "$err" | head -n 1 | grep -q "sweep: 'model.num_experts': expected key=value" || fail "malformed axis: $err"
[ ! -e "$work/bad" ] || fail "a malformed sweep left a folder"
echo "ok: cdrmix sweep (2x2 table from the runs' metrics, a failed run named, seeds spread, bad input named)"
