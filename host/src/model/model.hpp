// Model assembly: embedding -> N layers of (pre-norm time mixer + pre-norm FFN
// or MoE), each a block plugin -> final norm -> head. Parameter names follow
// RWKV-LM (emb, blocks.N.ln0/ln1/ln2, blocks.N.att.*, blocks.N.ffn.*, ln_out, head)
// so weights move between this workbench and the reference tools unrenamed.
#pragma once

#include <cdrmix/block.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/expert_group.hpp>
#include <cdrmix/registry.hpp>
#include <cdrmix/schema.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/activation_checkpoint.hpp"
#include "model/norm.hpp"

#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

// One block's config for the registry, and where in the model spec its keys
// sit (a JSON pointer such as "/mixer"; "" for an MoE layer, whose keys are
// the spec's own), so errors name the file each value came from.
struct BlockSpec {
    Json config;
    std::string path;
};

// One layer's blocks.
struct LayerSpec {
    BlockSpec mixer; // {type: rwkv7_time_mix, ...}
    BlockSpec ffn;   // {type: rwkv_channel_mix, ...} or {type: moe, ...}
};

// A model spec, from YAML or a Lua table. Its keys are declared in schema()
// (`cdrmix keys model`, docs/reference/model.md). Later rules override earlier
// ones: mixer/ffn for every layer; every moe_every-th layer's ffn (from
// first_dense_layers on) an MoE of `expert` blocks; attention_ratio layers use
// the `attention` mixer (on top or interleaved); mamba_layers use `mamba`; an
// explicit `layers` list overrides any layer. Other trainers' spellings are
// accepted: experts_per_tok, shared_expert_enabled, load_balance_alpha,
// intermediate_size, num_heads, kv_heads.
struct ModelSpec {
    std::string name = "model";
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t num_layers = 0;
    int64_t seq_length = 0;
    int64_t expert_parallel = 1; // placement, not architecture: ranks per expert group in a multi-process run
    std::string norm = "layernorm";
    double norm_eps = 1e-5;
    std::vector<LayerSpec> layers;
    Json source_json; // the spec as given (written to runs and checkpoints)
    std::string source; // file or script it came from, for messages
    std::shared_ptr<const ValueSources> sources; // finer sources inside it (command line, YAML), or null
    std::string source_path;                     // the spec's place in that tree

    static const Schema &schema();
    static ModelSpec from_json(const Json &j, const std::string &source);
    static ModelSpec from_config(const Config &config);
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
    std::vector<RoutingRecord> routing; // only when loss() was asked to record it
};

class Layer : public torch::nn::Module {
public:
    Layer(const LayerSpec &spec, const BlockContext &ctx, const ModelSpec &model, const Registry &registry);
    torch::Tensor forward(torch::Tensor x, BlockState *mixer_state, BlockState *ffn_state, ForwardContext &ctx);
    const Block &mixer() const { return *att; }
    const Block &feed_forward() const { return *ffn; }
    // Replaces the feed-forward block (Model::swap_router).
    void set_feed_forward(std::shared_ptr<Block> block);

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
    // experts: the expert group the MoE layers split their experts over
    // (expert_group.hpp), or null: every expert lives here.
    Model(ModelSpec spec, const Registry &registry, std::shared_ptr<ExpertGroup> experts = nullptr);

    // tokens: int64 [B,T] -> logits [B,T,V]. state: nullptr, or in/out recurrent state.
    torch::Tensor forward(const torch::Tensor &tokens, ModelState *state, ForwardContext &ctx);
    // batch: int64 [B,T+1]; predicts batch[:,1:] from batch[:,:-1].
    // record_routing: collect every MoE layer's decisions (for statistics).
    LossOutput loss(const torch::Tensor &batch, bool record_routing = false);
    // Where the parameters live; forward() and loss() move CPU inputs there.
    c10::Device device() const;

    const ModelSpec &spec() const { return spec_; }
    // This process's parameters (with expert parallelism, its share of the experts).
    int64_t num_parameters() const;
    // Null unless the experts are split over ranks.
    ExpertGroup *expert_group() const { return experts_.get(); }
    // Replaces the router of MoE layer `layer` (every MoE layer when layer < 0)
    // with one built from `router`, keeping every other parameter and buffer of
    // the layer (experts, shared experts) as they are. The new routers' initial
    // weights come from `seed` alone: the default generator's state is restored
    // afterwards, so the training's random stream is untouched. The spec
    // (source_json included, so checkpoints rebuild the new router) follows.
    // Returns the layers swapped; throws cdrmix::Error naming a layer that has
    // no router, or when no layer has one.
    std::vector<int64_t> swap_router(int64_t layer, const Json &router, const Registry &registry, uint64_t seed);
    // Which layers forward() checkpoints (activation_checkpoint.hpp) when it
    // records gradients without carried state; none by default. Throws
    // cdrmix::Error for a mode other than none with the experts split over ranks.
    void set_activation_checkpointing(const ActivationCheckpointing &checkpointing);
    const ActivationCheckpointing &activation_checkpointing() const { return checkpointing_; }

private:
    ModelSpec spec_;
    ActivationCheckpointing checkpointing_;
    std::shared_ptr<ExpertGroup> experts_;
    torch::nn::Embedding emb{nullptr};
    torch::nn::ModuleList blocks;
    std::vector<std::shared_ptr<Layer>> layers_;
    Norm ln_out{nullptr};
    torch::nn::Linear head{nullptr};
};

} // namespace cdrmix
