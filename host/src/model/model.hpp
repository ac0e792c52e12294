// Model assembly: embedding -> N layers of (pre-norm time mixer + pre-norm FFN
// or MoE), each a block plugin -> final norm -> head. Parameter names follow
// RWKV-LM (emb, blocks.N.ln0/ln1/ln2, blocks.N.att.*, blocks.N.ffn.*, ln_out, head)
// so weights move between this workbench and the reference tools unrenamed.
#pragma once

#include <cdrmix/block.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/registry.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/norm.hpp"

#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

// One layer's blocks, as configs for the registry.
struct LayerSpec {
    Json mixer; // {type: rwkv7_time_mix, ...}
    Json ffn;   // {type: rwkv_channel_mix, ...} or {type: moe, ...}
};

// A model spec, from YAML or a Lua table. Keys (later rules override earlier ones):
//   name, vocab_size, hidden_size, num_layers, seq_length (informational),
//   norm ("layernorm" | "rmsnorm"), norm_eps,
//   mixer, ffn                      block configs used by every layer,
//   moe_every, first_dense_layers, num_experts, top_k, num_shared_experts, capacity_factor,
//   router, expert                  every moe_every-th layer's ffn (from first_dense_layers on)
//                                   is an MoE of `expert` blocks,
//   attention_ratio, attention_placement ("top" | "interleave"), attention
//                                   RWKV-X hybrids: that share of layers use the `attention`
//                                   mixer, on top of the stack or spread evenly,
//   mamba_layers (list of 0-based indices), mamba
//                                   those layers use the `mamba` mixer (Oxidizr),
//   layers                          an explicit list of num_layers {mixer, ffn} tables.
// Aliases (Oxidizr / TardBot / CDRmix seeds): experts_per_tok = top_k,
// shared_expert_enabled = (num_shared_experts 1), load_balance_alpha = router.load_balance_alpha,
// intermediate_size = the ffn's and expert's expansion * hidden_size,
// num_heads / kv_heads = the attention mixer's num_heads / num_kv_heads.
struct ModelSpec {
    std::string name = "model";
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t num_layers = 0;
    int64_t seq_length = 0;
    std::string norm = "layernorm";
    double norm_eps = 1e-5;
    std::vector<LayerSpec> layers;
    Json source_json; // the spec as given (written to runs and checkpoints)
    std::string source; // file or script it came from, for messages

    static ModelSpec from_json(const Json &j, const std::string &source);
};

// Recurrent state of the whole model: one BlockState per block.
struct ModelState {
    std::vector<BlockState> mixer;
    std::vector<BlockState> ffn;
};

struct LossOutput {
    torch::Tensor total; // cross-entropy + auxiliary losses: what backward() is called on
    torch::Tensor ce;    // mean token cross-entropy
    std::vector<NamedLoss> aux;
    std::vector<RouterStats> router_stats;
};

class Layer : public torch::nn::Module {
public:
    Layer(const LayerSpec &spec, const BlockContext &ctx, const ModelSpec &model, const Registry &registry);
    torch::Tensor forward(torch::Tensor x, BlockState *mixer_state, BlockState *ffn_state, ForwardContext &ctx);
    const Block &mixer() const { return *att; }
    const Block &feed_forward() const { return *ffn; }

private:
    Norm ln0{nullptr}; // layer 0 only: normalises the embedding (RWKV's ln0)
    Norm ln1{nullptr}, ln2{nullptr};
    std::shared_ptr<Block> att, ffn;
};

// The modules around the layer stack: embedding, final norm, head.
struct OuterModules {
    torch::nn::Embedding emb{nullptr};
    Norm ln_out{nullptr};
    torch::nn::Linear head{nullptr};
    static OuterModules make(const ModelSpec &spec);
};

class Model : public torch::nn::Module {
public:
    Model(ModelSpec spec, const Registry &registry);

    // tokens: int64 [B,T] -> logits [B,T,V]. state: nullptr, or in/out recurrent state.
    torch::Tensor forward(const torch::Tensor &tokens, ModelState *state, ForwardContext &ctx);
    // batch: int64 [B,T+1]; predicts batch[:,1:] from batch[:,:-1].
    LossOutput loss(const torch::Tensor &batch);
    // Where the parameters live; forward() and loss() move CPU inputs there.
    c10::Device device() const;

    const ModelSpec &spec() const { return spec_; }
    int64_t num_parameters() const;

private:
    ModelSpec spec_;
    torch::nn::Embedding emb{nullptr};
    torch::nn::ModuleList blocks;
    std::vector<std::shared_ptr<Layer>> layers_;
    Norm ln_out{nullptr};
    torch::nn::Linear head{nullptr};
};

} // namespace cdrmix
