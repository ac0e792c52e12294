// Reading the weights of published RWKV-7 models into tensors under RWKV-LM's
// names (emb.weight, blocks.N.att.w1, ...), whatever convention the source
// uses. Every byte read is untrusted: a malformed file is one cdrmix::Error
// naming it.
#pragma once

#include <cdrmix/config.hpp>

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace cdrmix {

enum class NameConvention { rwkv_lm, fla };

struct SourceTensors {
    std::string where; // the file or folder, for messages
    NameConvention convention = NameConvention::rwkv_lm;
    std::map<std::string, at::Tensor> tensors; // by RWKV-LM name (unknown names kept as the source spells them)
    double norm_eps = 1e-5; // of every LayerNorm (RWKV-LM's; a Hugging Face config may say otherwise)
};

// How a tensor is called in the source, for messages: the RWKV-LM name itself,
// or "model.layers.1.attn.w_lora.lora.0.weight (blocks.1.att.w1, transposed)".
std::string source_name(const SourceTensors &source, const std::string &rwkv_lm_name);

// A flat name -> tensor map from a torch.save file (the zip format of
// PyTorch >= 1.6, import_torch_save.hpp) or a safetensors file; the file's
// first bytes decide which.
std::map<std::string, at::Tensor> read_weight_file(const std::string &path);

// An RWKV-LM checkpoint (.pth or .safetensors): its tensors as they are named.
SourceTensors read_rwkv_lm(const std::string &path);

// A Hugging Face folder in the flash-linear-attention RWKV-7 convention:
// config.json (model_type rwkv7) and model.safetensors, its sharded form
// (model.safetensors.index.json) or pytorch_model.bin. Names are mapped to
// RWKV-LM's, LoRA matrices transposed (fla stores them as nn.Linear weights).
SourceTensors read_hf_rwkv7(const std::string &folder);

} // namespace cdrmix
