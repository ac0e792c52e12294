#include "interop/export_rwkv7.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

namespace cdrmix {

namespace {

std::string layer_key(int64_t i, const std::string &rest) { return "blocks." + std::to_string(i) + "." + rest; }

// The reason layer i's blocks cannot be written as RWKV-7, or "".
std::string layer_blocker(const LayerSpec &layer) {
    const std::string mixer = layer.mixer.config.value("type", "");
    const std::string ffn = layer.ffn.config.value("type", "");
    if (mixer != "rwkv7_time_mix") return "its mixer is '" + mixer + "', not RWKV-7 time mixing";
    if (ffn == "moe")
        return "its FFN is an MoE layer (" + std::to_string(layer.ffn.config.value("num_experts", int64_t(0))) +
               " experts)";
    if (ffn != "rwkv_channel_mix") return "its FFN is '" + ffn + "', not RWKV-7 channel mixing";
    if (layer.ffn.config.value("receptance", false)) return "its channel mixing has a receptance gate (RWKV-4..6)";
    return "";
}

} // namespace

NamedWeights named_weights(Model &model) {
    NamedWeights w;
    for (const auto &p : model.named_parameters()) w.emplace(p.key(), p.value().detach());
    for (const auto &b : model.named_buffers()) w.emplace(b.key(), b.value().detach());
    return w;
}

const at::Tensor &weight(const NamedWeights &weights, const std::string &name) {
    auto it = weights.find(name);
    if (it == weights.end()) throw Error("export: the model has no tensor '" + name + "'");
    return it->second;
}

namespace {

// The dims, or why there are none: `why` names the first layer (or model setting) that blocks it.
Rwkv7Dims read_dims(const ModelSpec &spec, const NamedWeights &w, std::string &why) {
    Rwkv7Dims d;
    if (spec.norm != "layernorm") {
        why = "the model's norm is '" + spec.norm + "'; RWKV-7 uses LayerNorm";
        return d;
    }
    for (size_t i = 0; i < spec.layers.size(); ++i)
        if (std::string layer_why = layer_blocker(spec.layers[i]); !layer_why.empty()) {
            why = "layer " + std::to_string(i) + " is not a dense RWKV-7 layer: " + layer_why;
            return d;
        }
    d.vocab = weight(w, "emb.weight").size(0);
    d.hidden = weight(w, "emb.weight").size(1);
    d.layers = spec.num_layers;
    d.norm_eps = spec.norm_eps;
    // Each size must be one number for the whole model: both formats keep one per model.
    auto uniform = [&](const char *what, int64_t layer, int64_t value, int64_t &slot) {
        if (slot == 0) slot = value;
        else if (value != slot && why.empty())
            why = "layer " + std::to_string(layer) + "'s " + what + " is " + std::to_string(value) +
                  ", earlier layers' is " + std::to_string(slot) + "; the format has one per model";
    };
    for (int64_t i = 0; i < d.layers; ++i) {
        uniform("head size", i, weight(w, layer_key(i, "att.r_k")).size(1), d.head_size);
        uniform("FFN width", i, weight(w, layer_key(i, "ffn.key.weight")).size(0), d.ffn);
        uniform("decay LoRA rank", i, weight(w, layer_key(i, "att.w1")).size(1), d.decay_rank);
        uniform("in-context learning rate LoRA rank", i, weight(w, layer_key(i, "att.a1")).size(1), d.a_rank);
        uniform("gate LoRA rank", i, weight(w, layer_key(i, "att.g1")).size(1), d.gate_rank);
        if (i > 0) uniform("value-residual LoRA rank", i, weight(w, layer_key(i, "att.v1")).size(1), d.v_rank);
    }
    if (d.v_rank == 0) d.v_rank = d.a_rank;
    return d;
}

} // namespace

std::string rwkv7_blocker(const ModelSpec &spec, const NamedWeights &weights) {
    std::string why;
    read_dims(spec, weights, why);
    return why;
}

Rwkv7Dims dense_rwkv7_dims(const ModelSpec &spec, const NamedWeights &weights, const std::string &format) {
    std::string why;
    const Rwkv7Dims d = read_dims(spec, weights, why);
    if (!why.empty()) throw Error("cannot export to " + format + ": " + why);
    return d;
}

} // namespace cdrmix
