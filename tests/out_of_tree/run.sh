#!/usr/bin/env bash
# run.sh BUILD_DIR WORK_DIR [CORPUS]
# Builds the router in this folder outside the main build twice, against the
# build tree's SDK and against an installed SDK (cmake --install), and runs a Lua
# script that names it with each host, found through $CDRMIX_PLUGIN_PATH.
set -euo pipefail
build=$(realpath "$1")
work=$2
here=$(cd "$(dirname "$0")" && pwd)
corpus=${3:-/usr/share/games/fortunes/fortunes}
rm -rf "$work"
mkdir -p "$work"
work=$(realpath "$work")

echo "== against the build tree"
cmake -S "$here" -B "$work/build-tree" -Dcdrmix_DIR="$build" > "$work/configure-tree.log"
cmake --build "$work/build-tree" > "$work/build-tree.log"
CDRMIX_PLUGIN_PATH="$work/build-tree" "$build/bin/cdrmix" plugins | grep -E '^router +cosine +0\.1\.0'
CDRMIX_PLUGIN_PATH="$work/build-tree" "$build/bin/cdrmix" run "$here/use_router.lua" data.path=$corpus \
  --headless --runs-dir "$work/runs" | tail -n 1

echo "== against an installed SDK"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$here" -B "$work/build-installed" -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure-installed.log"
cmake --build "$work/build-installed" > "$work/build-installed.log"
CDRMIX_PLUGIN_PATH="$work/build-installed" "$work/prefix/bin/cdrmix" run "$here/use_router.lua" data.path=$corpus \
  --headless --runs-dir "$work/runs" | tail -n 1
