#!/usr/bin/env bash
# presets_by_name.sh CDRMIX BUILD_DIR WORK_DIR
# `cdrmix describe NAME` finds a preset from outside the source tree: the build
# tree's cdrmix through the source tree's configs/models, an installed cdrmix
# through share/cdrmix/models; an unknown name is one line naming the closest.
set -euo pipefail
cdrmix=$(realpath "$1") build=$(realpath "$2") work=$3
unset CDRMIX_PRESET_PATH
rm -rf "$work" && mkdir -p "$work/elsewhere"
work=$(realpath "$work")
cd "$work/elsewhere" # no configs/models here

described() { # described CDRMIX: the preset's report, from this folder
  "$1" describe cdrmix-small --vocab-size 256 --seq-len 64 --json | grep -q '"parameters"'
}

described "$cdrmix" || { echo "FAIL: the build tree's cdrmix did not find cdrmix-small"; exit 1; }
echo "ok   build tree"

if err=$("$cdrmix" describe cdrmix-smal 2>&1 >/dev/null); then echo "FAIL: an unknown preset was accepted"; exit 1; fi
first=$(printf '%s\n' "$err" | head -n 1)
if ! grep -Eq "no preset 'cdrmix-smal' \(searched .*configs/models\); closest: 'cdrmix-small'" <<<"$first"; then
  echo "FAIL: '$first' does not name the folders and the closest preset"; exit 1
fi
echo "ok   unknown name"

cmake --install "$build" --prefix "$work/inst" > "$work/install.log"
[[ -f "$work/inst/share/cdrmix/models/cdrmix-small.yaml" ]] || { echo "FAIL: no presets in share/cdrmix/models"; exit 1; }
described "$work/inst/bin/cdrmix" || { echo "FAIL: the installed cdrmix did not find cdrmix-small"; exit 1; }
echo "ok   installed"
