#!/usr/bin/env bash
# tfevents_check.sh CDRMIX CORPUS WORK_DIR: a short training run's TensorBoard
# event file read back by independent code (protobufjs and @aws-crypto/crc32c
# from npm, installed into a cache folder): every record's checksums hold, the
# file version comes first, and the losses equal metrics.jsonl's (as float32).
# Skips (77) with the reason where node or npm is missing or the packages
# cannot be installed.
set -u
cdrmix=$1 corpus=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
cache=${CDRMIX_NPM_CACHE:-$HOME/.cache/cdrmix-npm}/tfevents
for tool in node npm; do
  command -v $tool >/dev/null || { echo "skipped: $tool is not installed (apt-get install nodejs npm)"; exit 77; }
done
if [ ! -d "$cache/node_modules/protobufjs" ] || [ ! -d "$cache/node_modules/@aws-crypto/crc32c" ]; then
  mkdir -p "$cache"
  timeout 300 npm install --silent --no-audit --no-fund --prefix "$cache" protobufjs@7 @aws-crypto/crc32c@5 >"$cache/install.log" 2>&1 ||
    { echo "skipped: npm could not install protobufjs and @aws-crypto/crc32c: $(tail -n 1 "$cache/install.log")"; exit 77; }
fi
rm -rf "$work" && mkdir -p "$work"
"$cdrmix" run "$here/../lua/train_tiny.lua" data.path="$corpus" --headless --runs-dir "$work/runs" >"$work/run.txt" 2>&1 ||
  { cat "$work/run.txt"; echo "FAIL: the training run failed"; exit 1; }
run=$(ls -d "$work"/runs/train_tiny-*)
events=$(ls "$run"/events.out.tfevents.*)
node "$here/tfevents_check.mjs" "$cache/node_modules" "$events" >"$work/events.jsonl" || { echo "FAIL: the reader refused the file"; exit 1; }
node - "$work/events.jsonl" "$run/metrics.jsonl" <<'JS' || exit 1
const fs = require("fs");
const [events, metrics] = process.argv.slice(2).map((f) => fs.readFileSync(f, "utf8").trim().split("\n").map(JSON.parse));
const fail = (m) => { console.log("FAIL: " + m); process.exit(1); };
if (!events[0].file_version || !events[0].file_version.startsWith("brain.Event:")) fail("the first event is not the file version");
const f32 = (x) => Math.fround(x);
const steps = metrics.filter((r) => r.event === "step");
const loss = new Map(events.filter((e) => "train/loss" in e).map((e) => [e.step, e["train/loss"]]));
if (loss.size !== steps.length) fail(`${loss.size} train/loss events for ${steps.length} step records`);
for (const r of steps) if (loss.get(r.step) !== f32(r.loss)) fail(`step ${r.step}: train/loss ${loss.get(r.step)} vs ${r.loss}`);
const evals = metrics.filter((r) => r.event === "eval");
for (const r of evals) {
  const e = events.find((x) => x.step === r.step && "val/loss" in x);
  if (!e || e["val/loss"] !== f32(r.val_loss)) fail(`step ${r.step}: val/loss missing or different`);
}
const moe = events.filter((e) => "moe/layer1/load_cv" in e).length;
if (moe === 0) fail("no routing statistics");
console.log(`ok: ${events.length} events read independently; ${steps.length} losses, ${evals.length} val losses and ${moe} routing steps equal metrics.jsonl`);
JS
