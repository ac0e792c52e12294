#!/usr/bin/env bash
# disk_full.sh CDRMIX LUA_DIR CORPUS: writes that fail the way a full disk fails
# them, simulated with a cap on file size (ulimit -f; SIGXFSZ ignored, so a
# write past the cap fails with EFBIG as one past a full disk fails with ENOSPC):
#   - the metrics file fills up: the run stops at once with one line naming it,
#     saves a checkpoint, and metrics.jsonl holds only whole lines;
#   - a checkpoint's file fills up: one line naming it (no abort), no
#     temporary or partial checkpoint folder left;
#   - the run folder's first file fills up: one line, no half-made run folder.
set -u
cdrmix=$1 lua=$2 corpus=$3
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
verdict() { # name exit-status-of-the-condition
  if [ "$2" = 0 ]; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}
capped() { # KB runs-dir args...: cdrmix run disk_full.lua with every file it writes capped at KB kilobytes;
  # its output goes through a pipe (the cap would cut a file), the last lines and the exit status of cdrmix kept
  local kb=$1 runs=$2
  shift 2
  (trap '' XFSZ; ulimit -f "$kb"; exec "$cdrmix" --threads 1 run "$lua/disk_full.lua" data.path="$corpus" --headless \
    --runs-dir "$runs" "$@") 2>&1 | tail -n 20
  return "${PIPESTATUS[0]}"
}
fails_with() { # name KB runs-dir pattern args...: the capped run exits 1 (not an abort) with an error matching pattern
  local name=$1 kb=$2 runs=$3 pattern=$4
  shift 4
  capped "$kb" "$runs" "$@" >"$runs.out" 2>&1
  local rc=$?
  grep -Eq "$pattern" "$runs.out"
  local found=$?
  verdict "$name (exit $rc)" $((found || rc != 1))
}
whole_lines() { # every line of the file is a JSON object
  python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$1" 2>/dev/null
}

# The metrics file passes 250 KB after about 700 steps; checkpoints (under 220 KB a file) still fit.
fails_with "metrics file full: the run stops with one line naming it and saves a checkpoint" 250 "$tmp/a" \
  "error: .*metrics.jsonl: cannot write the metrics: File too large; stopped at step [0-9]+, saved a checkpoint at step [0-9]+" \
  train.steps=3000 train.checkpoint_every=200
run=$(ls -d "$tmp"/a/disk_full-* 2>/dev/null | head -n 1)
lines=$(wc -l <"$run/metrics.jsonl" 2>/dev/null)
whole_lines "$run/metrics.jsonl"
verdict "... metrics.jsonl holds whole lines only ($lines of them)" $?
stopped=$(grep -Eo 'stopped at step [0-9]+' "$tmp/a.out" | grep -Eo '[0-9]+$')
[ -n "$stopped" ] && [ -f "$run/checkpoints/step-$(printf %06d "$stopped")/manifest.json" ]
verdict "... the checkpoint of step $stopped is complete" $?
"$cdrmix" --threads 1 run --resume auto "$lua/disk_full.lua" data.path="$corpus" --headless --runs-dir "$tmp/a" \
  train.steps=$((stopped + 5)) >"$tmp/a2.out" 2>&1
verdict "... and the run resumes from it once there is room" $?

# optimizer.pt (about 210 KB) does not fit under 150 KB: the first checkpoint fails.
fails_with "checkpoint file full: one line naming optimizer.pt" 150 "$tmp/b" \
  "error: .*/optimizer.pt: cannot write: File too large"
leftovers=$(find "$tmp/b" -name '.tmp-*' -o -name 'step-*' | wc -l)
[ "$leftovers" = 0 ]
verdict "... no temporary or half-written checkpoint folder is left ($leftovers)" $?

# The run folder's first files (plugins.json, config.json: over 1 KB) do not fit under 1 KB.
fails_with "run folder full at start: one line naming the file" 1 "$tmp/c" \
  "error: .*/disk_full-[0-9-]+/[a-z_]+\.json: cannot write: File too large"
[ -z "$(ls -A "$tmp/c" 2>/dev/null)" ]
verdict "... and no half-made run folder is left" $?
exit $fail
