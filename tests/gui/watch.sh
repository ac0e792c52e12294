#!/usr/bin/env bash
# --watch follows a metrics.jsonl that grows while the window is open: the file
# starts as the first half of a 400-step run, cut mid-line, and the rest is
# appended two seconds later.
. "$(dirname "$0")/common.sh"
make_run out.dir="$WORK/full" out.steps=400
mkdir -p "$WORK/run"
size=$(stat -c %s "$WORK/full/metrics.jsonl")
half=$((size / 2 + 7))
head -c "$half" "$WORK/full/metrics.jsonl" >"$WORK/run/metrics.jsonl"
# 120 frames at 30 fps: about 4 s of watching after the first read.
gui --watch "$WORK/run" --frames 120 --max-fps 30 2>"$WORK/gui.err" &
pid=$!
sleep 2
tail -c +"$((half + 1))" "$WORK/full/metrics.jsonl" >>"$WORK/run/metrics.jsonl"
wait "$pid"
cat "$WORK/gui.err"
grep -q "run: 405 records, 400 steps;" "$WORK/gui.err"
echo "gui.watch: ok"
