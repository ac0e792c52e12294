// `cdrmix export CHECKPOINT --format gguf -o FILE.gguf`: a dense RWKV-7 model
// as llama.cpp's `rwkv7` architecture (src/models/rwkv7.cpp load_arch_tensors,
// convert_hf_to_gguf.py Rwkv7Model): the hyperparameters its loader reads,
// its tensor names and shapes (the six token-shift mixes fused into
// time_mix_lerp_fused in r,w,k,v,a,g order, r_k flat, LoRA matrices as
// ggml mul_mat weights, layer 0's unused v0/v1/v2 filled with a0/a1/a2 as
// the converter does), and the tokenizer as llama.cpp's "rwkv" model: token
// strings escaped as Python writes bytes, greedy longest match over bytes.
// That tokenizes byte and char vocabularies exactly as CDRmix does; a
// sentencepiece or id-only tokenizer is refused (llama.cpp's "rwkv" matching
// is not sentencepiece's segmentation, and ids have no text).
//
// float16 stores the large matrices (embedding, head, projections, the a/v/g
// LoRAs, FFN) in half precision and keeps in float32 what llama.cpp's own
// converter keeps there: vectors, the fused mixes and the decay LoRA.
#pragma once

#include "interop/export_rwkv7.hpp"
#include "interop/gguf_writer.hpp"
#include "train/checkpoint.hpp"

#include <cdrmix/tokenizer.hpp>

#include <string>
#include <vector>

namespace cdrmix {

// A token's bytes as llama.cpp's rwkv tokenizer reads them (llama_unescape_rwkv_token):
// printable ASCII as is, backslash, tab, newline and carriage return escaped, other bytes \xNN.
std::string escape_rwkv_token(const std::string &bytes);
// The tokenizer's tokens, escaped, padded with unused "[PADn]" entries up to
// the model's vocabulary (llama.cpp takes the vocabulary size from this list).
// Throws naming the tokenizer kind when llama.cpp cannot tokenize like it.
std::vector<std::string> rwkv_token_list(const Tokenizer &tokenizer, int64_t model_vocab);

// The tensors and metadata of the GGUF file, in a writer; float16 when `half`.
void add_rwkv7_gguf(GgufWriter &out, const Rwkv7Dims &dims, const NamedWeights &weights, bool half);

struct GgufExportOptions {
    std::string dtype = "float32"; // or "float16"
};

// Writes the file; returns a one-line summary for the terminal.
std::string export_gguf(const LoadedCheckpoint &checkpoint, const std::string &path, const GgufExportOptions &options);

} // namespace cdrmix
