#!/usr/bin/env bash
# `cdrmix launch -n 2 gui script.lua`: rank 0 shows the dashboard of the
# two-rank run (the per-rank throughput and communication panels), rank 1 runs
# headless; both finish, and one run folder holds the run.
. "$(dirname "$0")/common.sh"
LP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1280x800x24" "$CDRMIX" launch -n 2 --master 127.0.0.1:29778 --timeout 60 \
  gui tests/lua/dist_trainer.lua data.path=/usr/share/games/fortunes/fortunes --headless --runs-dir "$WORK/runs" \
  --frames 3 --screenshot "$WORK/dist.png" >"$WORK/out.txt" 2>"$WORK/err.txt" || { cat "$WORK/err.txt"; exit 1; }
grep -q "dist_trainer: rank 0 of 2 ok, 6 steps" "$WORK/out.txt"
grep -q "dist_trainer: rank 1 of 2 ok, 6 steps" "$WORK/out.txt"
[ "$(ls -d "$WORK"/runs/dist_trainer-* | wc -l)" = 1 ]
"$PNG_CHECK" "$WORK/dist.png"
echo "gui.dist: ok"
