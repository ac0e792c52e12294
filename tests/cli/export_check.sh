#!/usr/bin/env bash
# export_check.sh CDRMIX CORPUS WORK_DIR: `cdrmix export` from the command line.
# A tiny dense RWKV-7 model is trained and exported as a Hugging Face folder and
# as GGUF (f32 and f16); an MoE model is refused in one line naming its layer.
# Then the files are read by code that is not CDRmix's: @huggingface/gguf
# (npm, installed into a cache folder) for the GGUF files and plain node code
# for the safetensors header (export_check.mjs). Skips (77) with the reason,
# after the command-line checks, where node or npm is missing or the package
# cannot be installed.
set -u
cdrmix=$1 corpus=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
cache=${CDRMIX_NPM_CACHE:-$HOME/.cache/cdrmix-npm}/gguf
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$work" && mkdir -p "$work"

train() { # NAME OVERRIDES...: trains export_tiny.lua, prints the run folder
  local name=$1; shift
  "$cdrmix" run "$here/../lua/export_tiny.lua" data.path="$corpus" name="$name" "$@" --headless --runs-dir "$work/runs" \
    >"$work/$name.txt" 2>&1 || { cat "$work/$name.txt" >&2; echo "FAIL: training $name failed" >&2; exit 1; }
  ls -d "$work"/runs/"$name"-*
}
run=$(train dense) || exit 1
moe=$(train moe model.moe_every=2 train.steps=2) || exit 1

"$cdrmix" export "$run" --format hf -o "$work/hf" || fail "hf export"
for f in model.safetensors config.json README.md cdrmix_tokenizer.json; do
  [ -f "$work/hf/$f" ] || fail "hf folder has no $f"
done
grep -q '"model_type": "rwkv7"' "$work/hf/config.json" || fail "config.json is not fla's rwkv7"
for line in '^library_name: transformers$' '^pipeline_tag: text-generation$' '^\| steps \| 20 \|$' \
            '^\| final val loss \| [0-9.]+ \|$' "^\\| trained by \\| \`cdrmix run .*export_tiny.lua data.path=.* name=dense\` \\|$"; do
  grep -Eq -- "$line" "$work/hf/README.md" || { cat "$work/hf/README.md"; fail "the model card has no line /$line/"; }
done
"$cdrmix" export "$run" --format gguf -o "$work/m.gguf" || fail "gguf export"
"$cdrmix" export "$run" --format gguf --dtype f16 -o "$work/m16.gguf" || fail "gguf f16 export"

err=$("$cdrmix" export "$moe" --format gguf -o "$work/moe.gguf" 2>&1 >/dev/null) && fail "the MoE model was exported"
want='^cdrmix: error: cannot export to gguf \(llama.cpp rwkv7\): layer 1 is not a dense RWKV-7 layer: its FFN is an MoE layer \(4 experts\)$'
printf '%s\n' "$err" | grep -Eq -- "$want" || fail "refusal: '$err'"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "the refusal is not one line: $err"
[ ! -e "$work/moe.gguf" ] || fail "a refused export left a file"
"$cdrmix" export "$moe" --format hf -o "$work/hf-moe" >/dev/null || fail "the MoE model's hf export"
grep -q '"model_type": "cdrmix"' "$work/hf-moe/config.json" || fail "the MoE model's config.json is not CDRmix's type"
echo "ok: hf, gguf f32 ($(stat -c %s "$work/m.gguf") bytes) and f16 ($(stat -c %s "$work/m16.gguf") bytes) written; MoE refused: $err"

for tool in node npm; do
  command -v $tool >/dev/null || { echo "skipped: $tool is not installed (apt-get install nodejs npm)"; exit 77; }
done
if [ ! -d "$cache/node_modules/@huggingface/gguf" ]; then
  mkdir -p "$cache"
  timeout 300 npm install --silent --no-audit --no-fund --prefix "$cache" @huggingface/gguf@0.4 >"$cache/install.log" 2>&1 ||
    { echo "skipped: npm could not install @huggingface/gguf: $(tail -n 1 "$cache/install.log")"; exit 77; }
fi
node "$here/export_check.mjs" "$cache/node_modules" "$work"
