#!/usr/bin/env bash
# describe_presets.sh CDRMIX PRESET_DIR
# Runs `cdrmix describe --json` on every preset and checks the report is sane:
# parameters > 0, active <= total, memory total > weights.
# Then checks memory per rank (--dp, --ep, --shard-optimizer) on cdrmix-tiny
# against the arithmetic, and that bad rank layouts fail with one line.
# Then --budget and --checkpoint-activations on cdrmix-tiny: the verdict and
# the advice against the arithmetic, and bad budgets fail with one line.
# Then --expert-at-a-time against the arithmetic, and its refusal with --dp.
set -euo pipefail
cdrmix=$1 dir=$2
status=0
for preset in "$dir"/*.yaml; do
  name=$(basename "$preset" .yaml)
  if ! report=$("$cdrmix" describe "$preset" --vocab-size 256 --seq-len 256 --json 2>&1); then
    echo "FAIL $name: $report"; status=1; continue
  fi
  if ! python3 - "$name" "$report" <<'PY'
import json, sys
name, r = sys.argv[1], json.loads(sys.argv[2])
m = r["memory_bytes"]
ok = r["parameters"] > 0 and 0 < r["active_parameters"] <= r["parameters"] and m["total"] > m["weights"] > 0 and m["activations"] > 0
print(("ok  " if ok else "FAIL") + f" {name}: {r['parameters']/1e6:.1f}M total, {r['active_parameters']/1e6:.1f}M active, "
      f"activations {m['activations']/2**20:.1f} MiB at batch 1 x 256")
sys.exit(0 if ok else 1)
PY
  then status=1; fi
done

# ---- per rank: each case is "ARGS" then the reports in the same order ----
tiny=$dir/cdrmix-tiny.yaml
cases=("" "--dp 1 --ep 1" "--dp 2" "--dp 2 --shard-optimizer" "--dp 2 --ep 2" "--dp 2 --ep 2 --shard-optimizer"
       "--dp 4 --ep 2 --shard-optimizer --dtype bfloat16")
reports=()
for args in "${cases[@]}"; do
  # shellcheck disable=SC2086 # the case's options are words
  if ! reports+=("$("$cdrmix" describe "$tiny" --vocab-size 256 --seq-len 64 --json $args 2>&1)"); then
    echo "FAIL per rank [$args]: ${reports[-1]}"; exit 1
  fi
done
python3 - "${reports[@]}" <<'PY' || status=1
import json, sys
single, one, dp2, zero2, ep2, ep2_zero, mixed = (json.loads(a) for a in sys.argv[1:])
fails = []
def check(what, ok):
    print(("ok  " if ok else "FAIL") + " per rank: " + what)
    if not ok: fails.append(what)
def close(a, b): return abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1.0)

expert = single["expert_parameters"]
dense = single["parameters"] - expert
check("routed expert parameters are the layers' experts x size, and some are dense",
      expert == sum(l["count"] * l.get("experts", 0) * l.get("parameters_per_expert", 0) for l in single["layers"])
      and 0 < expert < single["parameters"])
check("no per_rank object unless asked", "per_rank" not in single)
check("dp 1, ep 1 equals the single process", one["per_rank"]["memory_bytes"] == one["memory_bytes"]
      and one["per_rank"]["parameters"] == one["parameters"])
check("dp 2 without sharding leaves memory per rank unchanged", dp2["per_rank"]["memory_bytes"] == single["memory_bytes"])

def expect(r, dp, ep, shard, value_bytes, optimizer_bytes):
    p = r["per_rank"]
    m, s = p["memory_bytes"], r["memory_bytes"]
    held = dense + expert / ep
    optimizer = (dense / (dp if shard else 1) + expert / ep / (dp // ep if shard else 1)) * optimizer_bytes
    want = {"weights": held * value_bytes, "gradients": held * value_bytes, "optimizer": optimizer,
            "activations": s["activations"]}
    want["total"] = sum(want.values())
    return (p["data_parallel"], p["expert_parallel"], p["shard_optimizer"]) == (dp, ep, shard) \
        and p["parameters"] == held and all(close(m[k], v) for k, v in want.items())

# At ep 1 every parameter has dp replicas, so ZeRO-1 halves all AdamW state.
check("ZeRO-1 at dp 2 halves optimiser state", expect(zero2, 2, 1, True, 4, 8)
      and zero2["per_rank"]["memory_bytes"]["optimizer"] == single["memory_bytes"]["optimizer"] / 2)
check("ep 2 halves expert weights per rank", expect(ep2, 2, 2, False, 4, 8)
      and single["memory_bytes"]["weights"] - ep2["per_rank"]["memory_bytes"]["weights"] == expert * 4 / 2)
# At dp 2, ep 2 each expert shard has one replica: ZeRO-1 halves only the dense state.
check("ZeRO-1 at dp 2, ep 2 halves dense optimiser state only", expect(ep2_zero, 2, 2, True, 4, 8)
      and ep2["per_rank"]["memory_bytes"]["optimizer"] - ep2_zero["per_rank"]["memory_bytes"]["optimizer"] == dense * 8 / 2)
check("dp 4, ep 2, ZeRO-1, bfloat16 (fp32 master copy: 12 optimiser bytes)", expect(mixed, 4, 2, True, 2, 12))
sys.exit(1 if fails else 0)
PY

# Bad layouts: one line naming the option, non-zero exit. cdrmix-tiny's MoE layer has 4 experts.
# "ARGS:WANT": describe cdrmix-tiny with ARGS fails with one line holding WANT.
expect_one_line() {
  local args=${1%%:*} want=${1#*:} err
  # shellcheck disable=SC2086
  if err=$("$cdrmix" describe "$tiny" --vocab-size 256 --seq-len 64 $args 2>&1 >/dev/null); then
    echo "FAIL [$args] succeeded"; status=1
  elif [[ $(wc -l <<<"$err") -ne 1 || $err != *"$want"* ]]; then
    echo "FAIL [$args]: expected one line with '$want', got: $err"; status=1
  else
    echo "ok   [$args]: $err"
  fi
}
for bad in "--dp 0:--dp" "--ep 0:--ep" "--dp 3 --ep 2:--ep 2 must divide --dp 3: one of 1, 3" \
           "--dp 6 --ep 3:--ep 3 does not divide the MoE layers' expert counts (4); with --dp 6, --ep must be one of 1, 2"; do
  expect_one_line "$bad"
done
# ---- budget: "ARGS" then the reports in the same order ----
budget_case() { "$cdrmix" describe "$tiny" --vocab-size 256 --seq-len 64 --batch 8 --json "$@"; }
plain=$(budget_case)
all=$(budget_case --checkpoint-activations all)
read -r total fixed per_seq all_per_seq < <(python3 -c '
import json, sys
p, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
m = p["memory_bytes"]
print(int(m["total"]), int(m["weights"] + m["gradients"] + m["optimizer"]),
      p["activations_by_checkpointing"]["none"] / 8, p["activations_by_checkpointing"]["all"] / 8)' "$plain" "$all")
# One byte short of the plain total; a budget that holds the fixed part and 3.5 plain sequences.
short=$(budget_case --budget "$((total - 1))")
three=$(budget_case --budget "$(python3 -c "print(int($fixed + 3.5 * $per_seq))")B")
exact=$(budget_case --budget "$total")
gib=$(budget_case --budget 18GiB)
python3 - "$plain" "$all" "$short" "$three" "$exact" "$gib" <<'PY' || status=1
import json, math, sys
plain, all_, short, three, exact, gib = (json.loads(a) for a in sys.argv[1:])
fails = []
def check(what, ok):
    print(("ok  " if ok else "FAIL") + " budget: " + what)
    if not ok: fails.append(what)
P = plain["parameters"]
m = plain["memory_bytes"]
# Hand arithmetic for float32 AdamW: 4 bytes of weight, 4 of gradient, 8 of moments per parameter.
check("weights, gradients, optimiser are 4P, 4P, 8P", (m["weights"], m["gradients"], m["optimizer"]) == (4 * P, 4 * P, 8 * P))
by = plain["activations_by_checkpointing"]
check("checkpointing every layer keeps less than none", by["all"] < by["none"] == m["activations"])
check("--checkpoint-activations all puts its figure in the total",
      all_["memory_bytes"]["activations"] == by["all"] and all_["memory_bytes"]["total"] == 16 * P + by["all"])
check("a budget equal to the total fits", exact["budget"]["fits"] is True)
check("one byte short does not fit", short["budget"]["fits"] is False)
advice = short["budget"]["suggestions"]
check("one byte short: checkpoint_activations = all and batch 7 are suggested",
      any('checkpoint_activations = "all" (total' in a for a in advice)
      and any(a.startswith("fits with --batch-size 7 (") for a in advice))
fixed = 16 * P
per_seq, all_per_seq = by["none"] / 8, by["all"] / 8
budget = three["budget"]["bytes"]
want_plain = math.floor((budget - fixed) / per_seq)
want_all = min(7, math.floor((budget - fixed) / all_per_seq))
advice = three["budget"]["suggestions"]
check(f"fixed + 3.5 sequences: batch {want_plain} plain and {want_all} checkpointed",
      want_plain == 3 and f"fits with --batch-size {want_plain} (total" in " ".join(advice)
      and (want_all >= 8 or f"fits with --batch-size {want_all} and train.checkpoint_activations" in " ".join(advice)))
check("18GiB is 18 * 2^30 bytes and fits", gib["budget"]["bytes"] == 18 * 2**30 and gib["budget"]["fits"])
check("other presets that fit are listed when the budget is short", "presets_that_fit" in short["budget"]
      and all(p["total_bytes"] <= short["budget"]["bytes"] for p in short["budget"]["presets_that_fit"]))
sys.exit(1 if fails else 0)
PY

for bad in "--budget 18GB?:describe: --budget: '18GB?' is not a size" "--budget 0GiB:describe: --budget: '0GiB' is not a size" \
           "--checkpoint-activations some:describe: --checkpoint-activations: key 'checkpoint_activations' must be"; do
  expect_one_line "$bad"
done

# ---- --expert-at-a-time: gradients and AdamW state for one routed expert per MoE layer ----
plain=$("$cdrmix" describe "$tiny" --vocab-size 256 --seq-len 64 --json)
rotating=$("$cdrmix" describe "$tiny" --vocab-size 256 --seq-len 64 --json --expert-at-a-time)
python3 - "$plain" "$rotating" <<'PY' || status=1
import json, sys
plain, rot = (json.loads(a) for a in sys.argv[1:])
frozen = sum(l["count"] * (l["experts"] - 1) * l["parameters_per_expert"] for l in plain["layers"] if "experts" in l)
m, r = plain["memory_bytes"], rot["memory_bytes"]
ok = frozen > 0 and rot["expert_at_a_time"] and r["weights"] == m["weights"] and r["activations"] == m["activations"] \
    and r["gradients"] == m["gradients"] - frozen * 4 and r["optimizer"] == m["optimizer"] - frozen * 8 \
    and r["total"] == r["weights"] + r["gradients"] + r["optimizer"] + r["activations"]
print(("ok  " if ok else "FAIL") + f" expert at a time: {frozen} frozen expert parameters without gradients or AdamW state")
sys.exit(0 if ok else 1)
PY
expect_one_line "--expert-at-a-time --dp 2:describe: --expert-at-a-time is for a single process"
exit $status
