// flash-linear-attention's RWKV-7 tensor names and RWKV-LM's (which CDRmix's
// RWKV-7 uses), declared once and read both ways: the Hugging Face import maps
// fla to RWKV-LM, the Hugging Face export maps back. Sources:
// fla/models/rwkv7/modeling_rwkv7.py, fla/layers/rwkv7.py and its
// RWKV-LM conversion script.
#pragma once

#include <optional>
#include <string>

namespace cdrmix {

struct FlaMapped {
    std::string name;
    // fla keeps RWKV-LM's LoRA matrices as nn.Linear weights: the other's transpose.
    bool transposed = false;
    // fla keeps this vector flat (C), RWKV-LM as (1, 1, C).
    bool flat = false;
};

// "model.layers.3.attn.w_lora.lora.0.weight" -> "blocks.3.att.w1" (transposed);
// nullopt for a name the convention does not have.
std::optional<FlaMapped> fla_to_rwkv_lm(const std::string &fla_name);
// The inverse; nullopt for a name fla has no slot for.
std::optional<FlaMapped> rwkv_lm_to_fla(const std::string &rwkv_lm_name);

} // namespace cdrmix
