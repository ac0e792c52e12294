#!/usr/bin/env bash
# Builds the default experiment's corpus, data/fortunes.txt, from the text of
# Debian's fortune cookie databases (packages fortunes and fortunes-min): plain
# English quotes, jokes and literature, about 2.5 MB. The '%' lines that separate
# entries become blank lines. Safe to run repeatedly; rewrites only when missing.
# Usage: scripts/prepare-corpus.sh [output-file]
set -euo pipefail

out=${1:-data/fortunes.txt}
src=/usr/share/games/fortunes

if [ -s "$out" ]; then
  echo "prepare-corpus: $out already present ($(wc -c < "$out") bytes)"
  exit 0
fi
if [ ! -d "$src" ]; then
  echo "prepare-corpus: error: $src not found; install the 'fortunes' package (scripts/install-deps.sh)" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
tmp="$out.tmp"
# Text databases are the files without an extension: skip the .dat indexes and
# the .u8 symlinks, and the offensive/ subfolder.
find "$src" -maxdepth 1 -type f ! -name '*.*' -print0 | sort -z |
  xargs -0 cat | sed 's/^%$//' | iconv -f utf-8 -t utf-8 -c > "$tmp"
mv "$tmp" "$out"
echo "prepare-corpus: wrote $out ($(wc -c < "$out") bytes)"
