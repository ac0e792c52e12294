#!/usr/bin/env bash
# reference_docs.sh CDRMIX SOURCE_DIR WORK_DIR
# docs/reference/ must be exactly what `cdrmix keys --markdown` writes from the
# declared schemas of the host and the in-tree plugins.
set -euo pipefail
cdrmix=$1 src=$2 work=$3
unset CDRMIX_PLUGIN_PATH # only the build's own plugins
rm -rf "$work"
"$cdrmix" keys --markdown "$work" > /dev/null
if ! diff -ru "$src/docs/reference" "$work"; then
  echo "FAIL: docs/reference/ differs from the schemas; regenerate it in the source tree with:"
  echo "  build/bin/cdrmix keys --markdown docs/reference"
  exit 1
fi
echo "ok   docs/reference/ matches the schemas"
