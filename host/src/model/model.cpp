#include "model/model.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cmath>

namespace cdrmix {

// ---- spec ------------------------------------------------------------------------

ModelSpec ModelSpec::from_json(const Json &j, const std::string &source) {
    Config c(j, "model", source);
    ModelSpec s;
    s.source = source;
    s.name = c.get_string("name", "model");
    s.vocab_size = c.require_int("vocab_size");
    s.hidden_size = c.require_int("hidden_size");
    s.num_layers = c.require_int("num_layers");
    s.norm_eps = c.get_double("norm_eps", 1e-5);
    c.get_int("seq_length", 0); // informational (recipes and `describe`), not a model parameter
    if (s.vocab_size <= 0 || s.hidden_size <= 0 || s.num_layers <= 0)
        throw Error(c.where() + ": vocab_size, hidden_size and num_layers must be positive");

    Json mixer = c.has("mixer") ? c.raw("mixer") : Json{{"type", "rwkv7_time_mix"}};
    Json ffn = c.has("ffn") ? c.raw("ffn") : Json{{"type", "rwkv_channel_mix"}};
    const int64_t moe_every = c.get_int("moe_every", 0);
    Json moe = {{"type", "moe"},
                {"num_experts", c.get_int("num_experts", 8)},
                {"top_k", c.get_int("top_k", 2)},
                {"router", c.has("router") ? c.raw("router") : Json{{"type", "topk"}}},
                {"expert", c.has("expert") ? c.raw("expert") : ffn}};
    for (int64_t i = 0; i < s.num_layers; ++i) {
        const bool is_moe = moe_every > 0 && (i + 1) % moe_every == 0;
        s.layers.push_back({mixer, is_moe ? moe : ffn});
    }
    if (c.has("layers")) {
        Json list = c.raw("layers");
        if (!list.is_array() || static_cast<int64_t>(list.size()) != s.num_layers)
            throw Error(c.where() + ": key 'layers' must be a list of num_layers (" + std::to_string(s.num_layers) +
                        ") tables");
        for (size_t i = 0; i < list.size(); ++i) {
            Config lc(list[i], "model.layers[" + std::to_string(i + 1) + "]", source);
            if (lc.has("mixer")) s.layers[i].mixer = lc.raw("mixer");
            if (lc.has("ffn")) s.layers[i].ffn = lc.raw("ffn");
            lc.check_unused();
        }
    }
    c.check_unused();
    s.source_json = j;
    return s;
}

// ---- layer -----------------------------------------------------------------------

Layer::Layer(const LayerSpec &spec, const BlockContext &ctx, double eps, const Registry &registry,
             const std::string &source) {
    auto ln = [&](const char *name) {
        return register_module(name, torch::nn::LayerNorm(torch::nn::LayerNormOptions({ctx.hidden_size}).eps(eps)));
    };
    if (ctx.layer == 0) ln0 = ln("ln0");
    ln1 = ln("ln1");
    const std::string where = "model layer " + std::to_string(ctx.layer);
    att = register_module("att", registry.create_block(Config(spec.mixer, where + " mixer", source), ctx));
    ln2 = ln("ln2");
    ffn = register_module("ffn", registry.create_block(Config(spec.ffn, where + " ffn", source), ctx));
}

torch::Tensor Layer::forward(torch::Tensor x, BlockState *mixer_state, BlockState *ffn_state, ForwardContext &ctx) {
    if (ln0) x = ln0(x);
    x = x + att->forward(ln1(x), mixer_state, ctx);
    x = x + ffn->forward(ln2(x), ffn_state, ctx);
    return x;
}

// ---- model -----------------------------------------------------------------------

Model::Model(ModelSpec spec, const Registry &registry) : spec_(std::move(spec)) {
    const int64_t V = spec_.vocab_size, C = spec_.hidden_size;
    emb = register_module("emb", torch::nn::Embedding(V, C));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < spec_.num_layers; ++i) {
        BlockContext ctx{C, i, spec_.num_layers};
        auto layer = std::make_shared<Layer>(spec_.layers[static_cast<size_t>(i)], ctx, spec_.norm_eps, registry,
                                             spec_.source);
        blocks->push_back(layer);
        layers_.push_back(layer);
    }
    ln_out = register_module("ln_out", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(spec_.norm_eps)));
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(C, V).bias(false)));

    // RWKV-LM initialisation: tiny embedding (ln0 rescales it), orthogonal head.
    torch::NoGradGuard no_grad;
    emb->weight.uniform_(-1e-4, 1e-4);
    torch::nn::init::orthogonal_(head->weight, 0.5 * std::sqrt(std::max(1.0, double(V) / double(C))));
}

torch::Tensor Model::forward(const torch::Tensor &tokens, ModelState *state, ForwardContext &ctx) {
    TORCH_CHECK(tokens.dim() == 2, "model.forward: tokens must be [B,T], got ", tokens.sizes());
    if (state && state->mixer.size() != layers_.size()) {
        state->mixer.assign(layers_.size(), {});
        state->ffn.assign(layers_.size(), {});
    }
    torch::Tensor x = emb(tokens);
    ctx.v_first = torch::Tensor();
    ctx.token_ids = tokens;
    for (size_t i = 0; i < layers_.size(); ++i) {
        ctx.layer = static_cast<int64_t>(i);
        x = layers_[i]->forward(x, state ? &state->mixer[i] : nullptr, state ? &state->ffn[i] : nullptr, ctx);
    }
    return head(ln_out(x));
}

LossOutput Model::loss(const torch::Tensor &batch) {
    TORCH_CHECK(batch.dim() == 2 && batch.size(1) >= 2, "model.loss: batch must be [B,T+1], got ", batch.sizes());
    const int64_t T = batch.size(1) - 1;
    ForwardContext ctx;
    torch::Tensor logits = forward(batch.slice(1, 0, T), nullptr, ctx);
    LossOutput out;
    out.ce = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                  batch.slice(1, 1, T + 1).reshape({-1}));
    out.total = out.ce;
    for (const auto &l : ctx.aux_losses) out.total = out.total + l.value;
    out.aux = std::move(ctx.aux_losses);
    out.router_stats = std::move(ctx.router_stats);
    return out;
}

int64_t Model::num_parameters() const {
    int64_t n = 0;
    for (const auto &p : parameters()) n += p.numel();
    return n;
}

} // namespace cdrmix
