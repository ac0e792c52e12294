// node export_check.mjs NODE_MODULES WORK_DIR: reads what export_check.sh
// exported with code that is not CDRmix's: the GGUF files (f32, f16) with
// @huggingface/gguf, checked against the tensors and ggml shapes llama.cpp's
// rwkv7 loader creates for the hyperparameters the file declares; and the
// Hugging Face folder's safetensors header, parsed here, against fla's RWKV-7
// names and the shapes its config.json implies.
import { createRequire } from "module";
import fs from "fs";
import path from "path";

const [modules, work] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const { gguf, GGUFValueType, GGMLQuantizationType } = require("@huggingface/gguf");
const fail = (m) => { console.log("FAIL: " + m); process.exit(1); };
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// llama.cpp src/models/rwkv7.cpp load_arch_tensors, in ggml order (ne[0] first).
function rwkv7Tensors(h) {
  const { C, V, L, F, dw, da, dv, dg } = h;
  const t = {
    "token_embd.weight": [C, V], "token_embd_norm.weight": [C], "token_embd_norm.bias": [C],
    "output_norm.weight": [C], "output_norm.bias": [C], "output.weight": [C, V],
  };
  for (let i = 0; i < L; i++) {
    const b = `blk.${i}.`;
    for (const n of ["attn_norm", "attn_norm_2", "time_mix_ln"]) { t[b + n + ".weight"] = [C]; t[b + n + ".bias"] = [C]; }
    t[b + "time_mix_w0.weight"] = [C]; t[b + "time_mix_w1.weight"] = [C, dw]; t[b + "time_mix_w2.weight"] = [dw, C];
    t[b + "time_mix_a0.weight"] = [C]; t[b + "time_mix_a1.weight"] = [C, da]; t[b + "time_mix_a2.weight"] = [da, C];
    const vr = i === 0 ? da : dv; // layer 0's unused value residual is loaded at the iclr rank
    t[b + "time_mix_v0.weight"] = [C]; t[b + "time_mix_v1.weight"] = [C, vr]; t[b + "time_mix_v2.weight"] = [vr, C];
    t[b + "time_mix_g1.weight"] = [C, dg]; t[b + "time_mix_g2.weight"] = [dg, C];
    t[b + "time_mix_lerp_fused.weight"] = [C, 1, 1, 6];
    for (const n of ["k_k", "k_a", "r_k"]) t[b + `time_mix_${n}.weight`] = [C];
    for (const n of ["key", "value", "receptance", "output"]) t[b + `time_mix_${n}.weight`] = [C, C];
    t[b + "channel_mix_lerp_k.weight"] = [C, 1, 1];
    t[b + "channel_mix_key.weight"] = [C, F]; t[b + "channel_mix_value.weight"] = [F, C];
  }
  return t;
}

// Matrices llama.cpp's converter writes in F16 for an f16 file; everything else stays F32.
const halfInF16 = (name) => /(token_embd|output|time_mix_(key|value|receptance|output|[avg][12])|channel_mix_(key|value))\.weight$/.test(name);

async function checkGguf(file, half) {
  const { metadata, typedMetadata, tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const size = BigInt(fs.statSync(file).size);
  if (metadata.version !== 3) fail(`${file}: version ${metadata.version}`);
  if (metadata["general.architecture"] !== "rwkv7") fail(`${file}: architecture ${metadata["general.architecture"]}`);
  const required = ["context_length", "embedding_length", "feed_forward_length", "block_count", "wkv.head_size",
    "attention.decay_lora_rank", "attention.iclr_lora_rank", "attention.value_residual_mix_lora_rank",
    "attention.gate_lora_rank", "token_shift_count"];
  for (const k of required) {
    const e = typedMetadata["rwkv7." + k];
    if (!e || e.type !== GGUFValueType.UINT32) fail(`${file}: rwkv7.${k} missing or not uint32`);
  }
  if (typedMetadata["rwkv7.attention.layer_norm_epsilon"]?.type !== GGUFValueType.FLOAT32) fail("layer_norm_epsilon not float32");
  if (metadata["rwkv7.token_shift_count"] !== 2) fail("token_shift_count is not 2");
  if (metadata["tokenizer.ggml.model"] !== "rwkv") fail("tokenizer model is not rwkv");
  const tokens = metadata["tokenizer.ggml.tokens"];
  const h = {
    C: metadata["rwkv7.embedding_length"], V: tokens.length, L: metadata["rwkv7.block_count"],
    F: metadata["rwkv7.feed_forward_length"], dw: metadata["rwkv7.attention.decay_lora_rank"],
    da: metadata["rwkv7.attention.iclr_lora_rank"], dv: metadata["rwkv7.attention.value_residual_mix_lora_rank"],
    dg: metadata["rwkv7.attention.gate_lora_rank"],
  };
  if (h.C % metadata["rwkv7.wkv.head_size"] !== 0) fail("head size does not divide the width");
  const expected = rwkv7Tensors(h);
  if (tensorInfos.length !== Object.keys(expected).length)
    fail(`${file}: ${tensorInfos.length} tensors, llama.cpp loads ${Object.keys(expected).length}`);
  if (tensorDataOffset % 32n !== 0n) fail("data section not aligned to 32");
  let end = 0n;
  for (const t of tensorInfos) {
    const want = expected[t.name];
    if (!want) fail(`${file}: unexpected tensor ${t.name}`);
    const shape = t.shape.map(Number);
    if (!same(shape, want)) fail(`${t.name}: shape ${shape}, llama.cpp expects ${want}`);
    const dtype = half && halfInF16(t.name) ? GGMLQuantizationType.F16 : GGMLQuantizationType.F32;
    if (t.dtype !== dtype) fail(`${t.name}: dtype ${t.dtype}, expected ${dtype}`);
    if (t.offset % 32n !== 0n) fail(`${t.name}: offset ${t.offset} not aligned`);
    const bytes = BigInt(shape.reduce((a, b) => a * b, 1) * (dtype === GGMLQuantizationType.F16 ? 2 : 4));
    if (t.offset < end) fail(`${t.name}: overlaps the tensor before it`);
    end = t.offset + bytes;
  }
  if (tensorDataOffset + end > size) fail(`${file}: tensor data runs past the end of the file`);
  return { h, tensors: tensorInfos.length, size };
}

function checkSafetensors(dir) {
  const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  const buf = fs.readFileSync(path.join(dir, "model.safetensors"));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const { hidden_size: C, vocab_size: V, num_hidden_layers: L, head_dim: N, intermediate_size: F } = config;
  const want = { "model.embeddings.weight": [V, C], "lm_head.weight": [V, C], "model.norm.weight": [C],
    "model.layers.0.pre_norm.weight": [C], [`model.layers.${L - 1}.attn.r_k`]: [C / N, N],
    [`model.layers.${L - 1}.attn.x_g`]: [1, 1, C], [`model.layers.${L - 1}.attn.k_k`]: [C],
    [`model.layers.${L - 1}.attn.w_lora.lora.0.weight`]: [config.decay_low_rank_dim, C],
    [`model.layers.${L - 1}.attn.v_lora.lora.2.bias`]: [C],
    [`model.layers.${L - 1}.attn.g_lora.lora.2.weight`]: [C, config.gate_low_rank_dim],
    [`model.layers.${L - 1}.ffn.key.weight`]: [F, C], [`model.layers.${L - 1}.ffn.x_k`]: [C] };
  for (const [name, shape] of Object.entries(want))
    if (!header[name] || !same(header[name].shape, shape)) fail(`hf: ${name} is ${JSON.stringify(header[name])}, fla has ${shape}`);
  if (header["model.layers.0.attn.v_lora.lora.0.weight"]) fail("hf: layer 0 has a v_lora, fla has none");
  let end = 0, count = 0;
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    count++;
    if (!/^(model\.|lm_head\.)/.test(name)) fail(`hf: ${name} is not an fla name`);
    const bytes = e.shape.reduce((a, b) => a * b, 1) * (e.dtype === "F32" ? 4 : 2);
    if (e.data_offsets[1] - e.data_offsets[0] !== bytes) fail(`hf: ${name} has the wrong byte count`);
    end = Math.max(end, e.data_offsets[1]);
  }
  if (8 + n + end !== buf.length) fail("hf: the data section does not end at the end of the file");
  return count;
}

const f32 = await checkGguf(path.join(work, "m.gguf"), false);
const f16 = await checkGguf(path.join(work, "m16.gguf"), true);
const hf = checkSafetensors(path.join(work, "hf"));
console.log(`ok: @huggingface/gguf read ${f32.tensors} tensors as llama.cpp's rwkv7 loader expects them ` +
            `(f32 ${f32.size} bytes, f16 ${f16.size} bytes); hf model.safetensors holds ${hf} tensors under fla names`);
