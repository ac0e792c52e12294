#!/usr/bin/env bash
# The dashboard's routing inspector and specialisation view in the window: a
# tiny run ends, the inspector routes a text through its final weights (the
# status line says how many tokens and which step's weights), the
# specialisation view counts over 8 batches of its held-out data, and the
# frames with either open differ from the one without.
. "$(dirname "$0")/common.sh"
args=(tests/lua/train_tiny.lua data.path=/usr/share/games/fortunes/fortunes --headless --frames 3)
gui "${args[@]}" --runs-dir "$WORK/runs" --inspect "The cat sat." --screenshot "$WORK/inspect.png" \
  >"$WORK/out.txt" 2>"$WORK/err.txt"
grep -q "train_tiny: ok" "$WORK/out.txt"
grep -q "^cdrmix gui: inspector: 12 tokens routed (routing with the weights of step 40)$" "$WORK/err.txt"
"$PNG_CHECK" "$WORK/inspect.png"
gui "${args[@]}" --runs-dir "$WORK/runs-plain" --screenshot "$WORK/plain.png" >/dev/null 2>&1
if cmp -s "$WORK/inspect.png" "$WORK/plain.png"; then
  echo "the inspector left the frame unchanged" >&2
  exit 1
fi
gui "${args[@]}" --runs-dir "$WORK/runs-spec" --specialisation --screenshot "$WORK/spec.png" >/dev/null 2>"$WORK/spec.txt"
# train_tiny: batch 8 x 32, one MoE layer.
grep -q "^cdrmix gui: specialisation: 1 MoE layers (over 2048 val tokens with the weights of step 40)$" "$WORK/spec.txt"
"$PNG_CHECK" "$WORK/spec.png"
if cmp -s "$WORK/spec.png" "$WORK/plain.png" || cmp -s "$WORK/spec.png" "$WORK/inspect.png"; then
  echo "the specialisation view left the frame unchanged" >&2
  exit 1
fi
# The inspector routes a live run's weights: not with --watch.
if gui --watch "$WORK"/runs/train_tiny-* --inspect x --frames 1 2>"$WORK/watch.txt"; then exit 1; fi
grep -q "^cdrmix: error: --inspect needs a script" "$WORK/watch.txt"
if gui --watch "$WORK"/runs/train_tiny-* --specialisation --frames 1 2>"$WORK/watch.txt"; then exit 1; fi
grep -q "^cdrmix: error: --specialisation needs a script" "$WORK/watch.txt"
echo "gui.inspect: ok"
