// What the outside RWKV-7 formats need to know about a CDRmix model, and the
// check that the model is one they can hold. flash-linear-attention's RWKV-7
// and llama.cpp's `rwkv7` architecture describe the same network as RWKV-LM:
// every layer RWKV-7 time mixing plus RWKV-7 channel mixing, LayerNorm, one
// head size, one rank per LoRA and one FFN width for the whole model. Sizes
// are read from the weights, not recomputed from the spec, so what is written
// always matches what is stored.
#pragma once

#include "model/model.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace cdrmix {

// A model's weights by their CDRmix (RWKV-LM) names.
using NamedWeights = std::map<std::string, at::Tensor>;
NamedWeights named_weights(Model &model);

struct Rwkv7Dims {
    int64_t vocab = 0, hidden = 0, layers = 0, head_size = 0, ffn = 0;
    int64_t decay_rank = 0, a_rank = 0, gate_rank = 0;
    // The value-residual LoRA exists from layer 1 on; a one-layer model has
    // none, and this is a_rank (a placeholder both formats require, never used).
    int64_t v_rank = 0;
    double norm_eps = 1e-5;
};

// "" for a dense RWKV-7 model with one size of each kind; otherwise why not,
// naming the first layer (or the model setting) that blocks it.
std::string rwkv7_blocker(const ModelSpec &spec, const NamedWeights &weights);
// The dims of a dense RWKV-7 model; a model the format cannot hold is one
// line, "cannot export to FORMAT: " and rwkv7_blocker's reason.
Rwkv7Dims dense_rwkv7_dims(const ModelSpec &spec, const NamedWeights &weights, const std::string &format);

// The weight `name`, or an error naming it (a checkpoint missing a tensor its spec implies).
const at::Tensor &weight(const NamedWeights &weights, const std::string &name);

} // namespace cdrmix
