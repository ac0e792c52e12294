#!/usr/bin/env bash
# `cdrmix gui script.lua` runs the script on a worker thread beside the window:
# the tiny training run passes its own checks, the window shows its final state
# (screenshot not blank) and the run directory holds its checkpoint.
. "$(dirname "$0")/common.sh"
gui tests/lua/train_tiny.lua data.path=/usr/share/games/fortunes/fortunes --headless --runs-dir "$WORK/runs" \
  --frames 3 --screenshot "$WORK/tiny.png" >"$WORK/out.txt" 2>"$WORK/err.txt"
grep -q "train_tiny: ok" "$WORK/out.txt"
grep -q "train_tiny: .* 40 steps;" "$WORK/err.txt"
ls "$WORK"/runs/train_tiny-*/checkpoints/latest/model.safetensors >/dev/null
"$PNG_CHECK" "$WORK/tiny.png"
# Without a display: one line saying what to do instead, non-zero exit.
if DISPLAY= WAYLAND_DISPLAY= "$CDRMIX" gui --watch "$WORK"/runs/train_tiny-* 2>"$WORK/nodisplay.txt"; then exit 1; fi
grep -q "^cdrmix: error: no display (DISPLAY is not set): use \`cdrmix run\`" "$WORK/nodisplay.txt"
echo "gui.script: ok"
