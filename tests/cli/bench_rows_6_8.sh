#!/usr/bin/env bash
# bench_rows_6_8.sh CDRMIX WORK_DIR
# `cdrmix bench --quick` rows 6-9 are printed with figures and ratios (their
# values are the benchmark's business, not the test's): streaming generation,
# the data pipeline against training, data-parallel scaling over loopback
# (row 9), and the dashboard's cost, which runs
# under xvfb-run when it is installed and says it was skipped without a display
# (or without the dashboard in the build).
set -u
cdrmix=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
num='[0-9]+(\.[0-9]+)?'
has() { # has NAME REGEX FILE
  grep -Eq -- "$2" "$3" || { cat "$3"; fail "$1: no line matching /$2/"; }
  echo "ok   $1"
}

DISPLAY= WAYLAND_DISPLAY= "$cdrmix" --threads 1 bench --quick --only generation,data,gui,dist >"$work/out.txt" 2>&1 ||
  { cat "$work/out.txt"; fail "cdrmix bench exited non-zero"; }
out=$work/out.txt
has "rwkv7 decode" "^6 RWKV-7 decode, ctx 2048 +$num tok/s +ctx 128 $num tok/s +$num \(target >= 0.9\)" "$out"
has "rwkv7 state" "^  RWKV-7 state carried, ctx 2048 +$num KiB +ctx 128 $num KiB +${num}x \(target 1.00x\)" "$out"
has "rwkv7 rss" "^  RWKV-7 RSS growth, 64 tokens each +[-+]$num MB" "$out"
has "attention decode" "^  attention decode, ctx 2048 +$num tok/s +ctx 128 $num tok/s +$num" "$out"
has "attention cache" "^  attention state carried, ctx 2048 +$num KiB +ctx 128 $num KiB +${num}x" "$out"
has "data headline" "^7 data pipeline, slowest: .* B16 T256 +$num tok/s +training $num tok/s +${num}x \(target >= 20x\)" "$out"
for source in "text (char)" "jsonl (char)" "bin (uint16)"; do
  pattern=$(printf '%s' "$source" | sed 's/[()]/\\&/g')
  has "data $source" "^  data $pattern B16 T256 +$num tok/s +training $num tok/s +${num}x" "$out"
done
has "training consumption" "^  training consumption +$num tok/s +cdrmix-small B16 T256, 2 timed steps" "$out"
has "data parallel" "^9 data parallel, 2 ranks x 1 thread, cdrmix-small B4 T256 per rank +$num tok/s per rank +1 rank x 1 thread $num tok/s +${num}x \(comm $num% of step\)" "$out"
has "all-reduce bandwidth" "^  all-reduce 16 MiB float32, 2 ranks, Gloo over loopback +$num GB/s bus +memcpy $num GB/s +${num}x" "$out"
has "expert parallel step" "^  expert parallel 2 vs 1, 2 ranks, 8 experts, C256 L4, B4 T256: step time +$num ms \(comm $num%\) +E_p=1 $num ms \(comm $num%\) +${num}x" "$out"
has "expert parallel memory" "^  \.\.\. weights \+ gradients \+ AdamW state per rank +$num MiB +E_p=1 $num MiB +0\.[0-9]+x" "$out"
# (a build without the dashboard, as on a machine without Dear ImGui, says so instead)
has "gui without a display" "^8 training tok/s, dashboard open vs headless +skipped +(no display: run scripts/bench.sh|built without the dashboard)" "$out"
# The KV cache grows with the context; the RWKV-7 state does not.
grep -Eq "^  RWKV-7 state carried.* 1\.00x" "$out" || { cat "$out"; fail "the RWKV-7 state changed size with the context"; }
grep -Eq "^  attention state carried.* (1[0-9]|[2-9][0-9])\.[0-9]+x" "$out" ||
  { cat "$out"; fail "the KV cache did not grow at least 10x from context 128 to 2048"; }

if grep -q "built without the dashboard" "$out"; then
  echo "SKIPPED (row 8 with a display): this build has no dashboard (Dear ImGui and GLFW were not found)"
  exit 77
fi
if ! command -v xvfb-run >/dev/null 2>&1; then
  echo "SKIPPED (row 8 with a display): xvfb-run is not installed (apt-get install xvfb xauth)"
  exit 77
fi
gui_bench() {
  LP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1280x800x24 -noreset" "$cdrmix" --threads 1 bench --quick --only gui \
    >"$work/gui.txt" 2>&1 || { cat "$work/gui.txt"; fail "cdrmix bench --only gui exited non-zero"; }
}
gui_bench
# xvfb-run -a can pick a display number that a virtual display started beside it takes first: once more.
if grep -q "cannot open the display" "$work/gui.txt"; then gui_bench; fi
has "gui row" "^8 training tok/s, dashboard open vs headless \(B8 T128, 10 steps\) +$num tok/s +headless $num tok/s +cost -?$num% \(target <= 5%\)" "$work/gui.txt"
has "gui pairs" "^  each pair \(tok/s; open / headless\) +open $num $num +headless $num $num +$num $num$" "$work/gui.txt"
echo "bench rows 6-8: ok"
