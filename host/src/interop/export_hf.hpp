// `cdrmix export CHECKPOINT --format hf -o DIR`: a Hugging Face model folder.
//   model.safetensors       the weights
//   config.json             the model's Hugging Face config
//   README.md               the model card (interop/model_card.hpp)
//   cdrmix_tokenizer.json   the checkpoint's tokenizer in CDRmix's own format
//                           (named apart from Hugging Face's tokenizer.json, which it is not)
// A dense RWKV-7 model is written in flash-linear-attention's RWKV-7
// convention (model_type "rwkv7", RWKV7ForCausalLM, `model.layers.N.attn.*`
// names, LoRAs as nn.Linear pairs), which fla's transformers classes and
// llama.cpp's convert_hf_to_gguf.py read. Any other model keeps CDRmix's
// names under model_type "cdrmix", its full spec inside config.json.
//
// The folder is written under DIR.tmp and renamed into place, so DIR is whole
// or absent; an existing non-empty DIR is an error, never overwritten.
#pragma once

#include "interop/export_rwkv7.hpp"
#include "train/checkpoint.hpp"

#include <ATen/core/Tensor.h>

#include <string>

namespace cdrmix {

// A dense RWKV-7 model's weights under fla's names and shapes (interop/fla_names.hpp:
// LoRA matrices transposed into nn.Linear weights, the vectors fla keeps flat made flat).
NamedTensors fla_rwkv7_weights(const NamedWeights &weights);
// fla's RWKV7Config for these dims; dtype is "float32" or "float16".
Json fla_rwkv7_config(const Rwkv7Dims &dims, const std::string &dtype);

struct HfExportOptions {
    std::string dtype = "float32"; // or "float16": floating-point weights are converted
    std::string license = "other"; // the model card's license (an SPDX id or Hugging Face's name)
};

// Writes the folder; returns a one-line summary for the terminal.
std::string export_hf(const LoadedCheckpoint &checkpoint, const std::string &out_dir, const HfExportOptions &options);

} // namespace cdrmix
