#!/usr/bin/env bash
# The dashboard's routing inspector and swap controls in the window: a tiny run
# ends, the inspector routes a text through its final weights (the status
# line says how many tokens and which step's weights), and the frame with the
# inspector open differs from the one without it.
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
# The inspector routes a live run's weights: not with --watch.
if gui --watch "$WORK"/runs/train_tiny-* --inspect x --frames 1 2>"$WORK/watch.txt"; then exit 1; fi
grep -q "^cdrmix: error: --inspect needs a script" "$WORK/watch.txt"
echo "gui.inspect: ok"
