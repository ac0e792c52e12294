#!/usr/bin/env bash
# Writes the synthetic chat corpus experiments/finetune.lua trains and measures
# on: data/chat/<kind>_train.jsonl (2000 conversations) and <kind>_test.jsonl
# (200 held out: `--split test`, whose questions no train file asks; a question's
# split is a hash of its text, see host/src/chat/synth_chat.hpp).
# Usage: scripts/prepare-chat.sh [cdrmix-binary] [output-folder]
set -euo pipefail
cdrmix=${1:-build/bin/cdrmix}
out=${2:-data/chat}
mkdir -p "$out"
for kind in instruct tools reasoning; do
  "$cdrmix" data synth-chat --kind "$kind" --n 2000 --seed 1 -o "$out/${kind}_train.jsonl"
  "$cdrmix" data synth-chat --kind "$kind" --n 200 --seed 1 --split test -o "$out/${kind}_test.jsonl"
done
