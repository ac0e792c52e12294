#!/usr/bin/env bash
# plot.sh CDRMIX WORK_DIR: `cdrmix plot` on two runs' metrics.jsonl (written
# here with known values): the SVG's curves map back to the records through the
# plot area's declared ranges and its legend names both runs; the PNG decodes
# (zlib and PNG's row filters, in Python) and has curve pixels in the plot area;
# mistakes are one line naming the flag or file, non-zero, with no file written.
set -u
cdrmix=$1 work=$2
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work/runs/alpha" "$work/runs/beta"

python3 - "$work/runs" <<'PY' || fail "writing the metrics"
import json, sys
for name, scale in (("alpha", 1.0), ("beta", 1.4)):
    with open(f"{sys.argv[1]}/{name}/metrics.jsonl", "w") as f:
        f.write(json.dumps({"event": "run", "dir": name, "name": name, "time": 1000.0}) + "\n")
        for s in range(1, 31):
            f.write(json.dumps({"event": "step", "step": s, "time": 1000.0 + s, "loss": scale * (3 + 5.0 / s),
                                "moe": [{"layer": 1, "load_cv": 0.1 * scale + 0.01 * s, "tokens_per_expert": [3, 5]}]}) + "\n")
            if s % 10 == 0:
                f.write(json.dumps({"event": "eval", "step": s, "time": 1000.0 + s, "val_loss": scale * (3.2 + 5.0 / s)}) + "\n")
        f.write('{"event": "step", "step": 31, "loss": \n')  # a torn last line: skipped with a warning
PY

"$cdrmix" plot "$work/runs/alpha" "$work/runs/beta" --metric loss,val_loss,load_cv --smooth 0 -o "$work/fig.svg" \
  || fail "plot to SVG"
python3 - "$work/fig.svg" <<'PY' || fail "the SVG"
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
panels = root.findall("s:g[@class='panel']", ns)
assert [p.get("data-metric") for p in panels] == ["loss", "val_loss", "load_cv"], panels
def curve(panel, label):
    area = panel.find("s:rect[@class='plot-area']", ns)
    x, y, w, h = (float(area.get(k)) for k in ("x", "y", "width", "height"))
    x_lo, x_hi = map(float, area.get("data-x-range").split())
    y_lo, y_hi = map(float, area.get("data-y-range").split())
    line = [l for l in panel.iter("{http://www.w3.org/2000/svg}polyline") if l.get("data-label") == label]
    assert len(line) == 1, (label, len(line))
    pts = [tuple(map(float, p.split(","))) for p in line[0].get("points").split()]
    return [(x_lo + (px - x) / w * (x_hi - x_lo), y_lo + (y + h - py) / h * (y_hi - y_lo)) for px, py in pts], \
           (x_hi - x_lo) / w * 0.01, (y_hi - y_lo) / h * 0.01
for name, scale in (("alpha", 1.0), ("beta", 1.4)):
    pts, tx, ty = curve(panels[0], name + " train")
    assert len(pts) == 30, len(pts)
    for s, (x, y) in enumerate(pts, 1):
        assert abs(x - s) <= tx and abs(y - scale * (3 + 5.0 / s)) <= ty, (name, s, x, y)
    pts, tx, ty = curve(panels[2], name + " L1")
    for s, (x, y) in enumerate(pts, 1):
        assert abs(y - (0.1 * scale + 0.01 * s)) <= ty, (name, s, y)
legend = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "legend"]
assert legend == ["alpha train", "alpha val", "beta train", "beta val", "alpha", "beta", "alpha L1", "beta L1"], legend
print("svg ok:", len(panels), "panels, legend", legend)
PY

"$cdrmix" plot "$work/runs/alpha" "$work/runs/beta" --metric loss,load_cv --log-y -o "$work/fig.png" || fail "plot to PNG"
python3 - "$work/fig.png" <<'PY' || fail "the PNG"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "signature"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
    if kind == b"IDAT": idat += body
    pos += 12 + n
w, h, depth, colour = ihdr[:4]
assert (w, h, depth, colour) == (800, 600, 8, 2), ihdr  # 8-bit RGB
raw, bpp, stride = zlib.decompress(idat), 3, w * 3
rows, prev = [], bytearray(stride)
for r in range(h):
    f, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line)
    prev = line
# The two runs' colours (the dashboard's palette: 86,180,233 and 230,159,0) inside the top plot area.
def count(rgb, y0, y1):
    return sum(1 for y in range(y0, y1) for x in range(80, 600) if tuple(rows[y][3 * x:3 * x + 3]) == rgb)
for rgb in ((86, 180, 233), (230, 159, 0)):
    assert count(rgb, 40, 255) > 50, ("loss panel", rgb)
assert sum(1 for y in range(0, 600) for x in range(800) if tuple(rows[y][3 * x:3 * x + 3]) != (255, 255, 255)) > 5000
print("png ok: 800 x 600, curves drawn")
PY

expect_error() { # PATTERN COMMAND...: non-zero, first stderr line matches, no output file
  local pattern=$1; shift
  rm -f "$work/bad.svg" "$work/bad.jpg"
  local err; err=$("$@" 2>&1 >/dev/null) && fail "expected an error from: $*"
  printf '%s\n' "$err" | head -n 1 | grep -Eq -- "$pattern" || fail "first error line '$(printf '%s\n' "$err" | head -n 1)' does not match /$pattern/"
  [ ! -e "$work/bad.svg" ] && [ ! -e "$work/bad.jpg" ] || fail "a file was written by: $*"
}
expect_error "plot: --metric 'val_los' is not a metric; did you mean 'val_loss'\\?" \
  "$cdrmix" plot "$work/runs/alpha" --metric loss,val_los -o "$work/bad.svg"
expect_error "plot: -o '.*bad.jpg': the extension picks the format: .png or .svg" \
  "$cdrmix" plot "$work/runs/alpha" -o "$work/bad.jpg"
expect_error "plot: .*no/such/run: no such file or directory" "$cdrmix" plot "$work/no/such/run" -o "$work/bad.svg"
mkdir -p "$work/empty/nothing"
expect_error "plot: .*empty: no metrics.jsonl in that directory" "$cdrmix" plot "$work/empty" -o "$work/bad.svg"
# A folder of runs (runs/, a sweep) overlays every run in it, in name order.
"$cdrmix" plot "$work/runs" -o "$work/folder.svg" 2>/dev/null || fail "plot of a folder of runs"
python3 - "$work/folder.svg" <<'PY' || fail "the folder's SVG"
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
legend = [t.text for t in ET.parse(sys.argv[1]).getroot().iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "legend"]
assert any("alpha" in l for l in legend) and any("beta" in l for l in legend), legend
PY
echo "ok: cdrmix plot (SVG mapped back to the data, PNG decoded and drawn, bad input named)"
