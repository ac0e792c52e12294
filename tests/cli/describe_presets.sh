#!/usr/bin/env bash
# describe_presets.sh CDRMIX PRESET_DIR
# Runs `cdrmix describe --json` on every preset and checks the report is sane:
# parameters > 0, active <= total, memory total > weights.
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
exit $status
