#!/usr/bin/env bash
# The dashboard renders a watched run to a PNG that is not blank, and a run with
# different data gives a different picture.
. "$(dirname "$0")/common.sh"
make_run out.dir="$WORK/a" out.shape=1
make_run out.dir="$WORK/b" out.shape=2
gui --watch "$WORK/a" --frames 3 --screenshot "$WORK/a.png"
gui --watch "$WORK/b" --frames 3 --screenshot "$WORK/b.png"
"$PNG_CHECK" "$WORK/a.png" "$WORK/b.png"
# Two runs overlaid, in one picture.
gui --watch "$WORK/a" "$WORK/b" --frames 3 --screenshot "$WORK/ab.png" 2>"$WORK/ab.err"
grep -q "a: 304 records, 300 steps; b: 304 records, 300 steps;" "$WORK/ab.err"
"$PNG_CHECK" "$WORK/ab.png" "$WORK/a.png"
echo "gui.screenshot: ok"
