#!/usr/bin/env bash
# export_llama_cpp.sh CDRMIX CORPUS WORK_DIR: llama.cpp itself runs what
# `cdrmix export --format gguf` wrote. A tiny dense RWKV-7 model (char
# tokenizer) is trained, CDRmix's logits for a sentence are saved, the model is
# exported in f32 and f16, and node-llama-cpp (npm: a prebuilt libllama for
# linux-x64, CPU) loads each file, tokenizes the sentence with its rwkv
# tokenizer and evaluates the tokens in one batch and token by token
# (export_llama_cpp.mjs); prints the largest logit differences from CDRmix.
# Passes when llama.cpp loads both files, its tokens are CDRmix's, and its raw
# logits match CDRmix's to 1e-4 in f32 (measured: 3e-6 for logits up to 7.4)
# and 1e-2 in f16 (8e-4: llama.cpp rounds the weights and, in its f16 matrix
# products, the activations too). The model has head size 64, as llama.cpp's
# rwkv7 kernels require (export refuses others; docs/interop.md).
# Skips (77) with the reason where node or npm is missing, the machine is not
# linux-x64, or the package cannot be installed. Every step is bounded by `timeout`.
set -u
cdrmix=$1 corpus=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
cache=${CDRMIX_NPM_CACHE:-$HOME/.cache/cdrmix-npm}/llama
text="The quick brown fox jumps over the lazy dog."
fail() { echo "FAIL: $*"; exit 1; }

for tool in node npm; do
  command -v $tool >/dev/null || { echo "skipped: $tool is not installed (apt-get install nodejs npm)"; exit 77; }
done
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "skipped: node-llama-cpp's prebuilt CPU library is used for linux-x64 only"; exit 77; }
if [ ! -d "$cache/node_modules/node-llama-cpp" ] || [ ! -d "$cache/node_modules/@node-llama-cpp/linux-x64" ]; then
  mkdir -p "$cache"
  # The CPU package alone: the optional CUDA and Vulkan builds are hundreds of megabytes.
  timeout 600 npm install --silent --no-audit --no-fund --omit=optional --prefix "$cache" node-llama-cpp@3 \
    @node-llama-cpp/linux-x64@3 >"$cache/install.log" 2>&1 ||
    { echo "skipped: npm could not install node-llama-cpp: $(tail -n 1 "$cache/install.log")"; exit 77; }
fi

rm -rf "$work" && mkdir -p "$work"
timeout 300 "$cdrmix" run "$here/../lua/export_tiny.lua" data.path="$corpus" text="$text" logits="$work/cdrmix_logits.json" \
  --headless --runs-dir "$work/runs" >"$work/run.txt" 2>&1 || { cat "$work/run.txt"; fail "the training run failed"; }
run=$(ls -d "$work"/runs/export_tiny-*)
for dtype in f32 f16; do
  timeout 120 "$cdrmix" export "$run" --format gguf --dtype $dtype -o "$work/$dtype.gguf" >/dev/null || fail "export $dtype"
  timeout 300 node "$here/export_llama_cpp.mjs" "$cache/node_modules" "$work/$dtype.gguf" "$work/cdrmix_logits.json" "$text" \
    >"$work/$dtype.json" 2>"$work/$dtype.err" || { cat "$work/$dtype.err"; fail "llama.cpp could not run $dtype.gguf"; }
  echo "llama.cpp vs CDRmix, $dtype: $(cat "$work/$dtype.json")"
done
node - "$work/f32.json" "$work/f16.json" <<'JS'
const fs = require("fs");
const [f32, f16] = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
const fail = (m) => { console.log("FAIL: " + m); process.exit(1); };
for (const r of [f32, f16]) {
  if (!r.same_tokens) fail(`${r.file}: llama.cpp's rwkv tokenizer split the text differently from CDRmix's`);
  const bound = r === f32 ? 1e-4 : 1e-2;
  if (!(r.max_abs_diff < bound)) fail(`${r.file}: batched logits differ by up to ${r.max_abs_diff} (bound ${bound})`);
  if (!(r.max_abs_diff_token_by_token < bound))
    fail(`${r.file}: token-by-token logits differ by up to ${r.max_abs_diff_token_by_token} (bound ${bound})`);
}
console.log(`ok: llama.cpp loaded f32 and f16, tokenized like CDRmix; largest logit difference from CDRmix: ` +
            `f32 ${f32.max_abs_diff.toExponential(2)} batched, ${f32.max_abs_diff_token_by_token.toExponential(2)} token by token; ` +
            `f16 ${f16.max_abs_diff.toExponential(2)}, ${f16.max_abs_diff_token_by_token.toExponential(2)}; ` +
            `largest |logit| ${f32.max_abs_logit.toFixed(2)}`);
JS
