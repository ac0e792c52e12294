#include "model/model.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cmath>

namespace cdrmix {

// ---- spec ------------------------------------------------------------------------

namespace {

// Sets key in a block config unless the user already did.
void set_default(Json &cfg, const char *key, const Json &value) {
    if (!cfg.contains(key)) cfg[key] = value;
}

// The layers an attention schedule turns into attention layers.
std::vector<int64_t> attention_layers(double ratio, const std::string &placement, int64_t L, const Config &c) {
    if (ratio < 0 || ratio > 1) throw Error(c.where() + ": key 'attention_ratio' must be between 0 and 1");
    const int64_t n = static_cast<int64_t>(std::lround(ratio * double(L)));
    std::vector<int64_t> out;
    if (n == 0) return out;
    if (placement == "top") {
        for (int64_t i = L - n; i < L; ++i) out.push_back(i);
    } else if (placement == "interleave") {
        // n layers spread evenly, each closing its group: e.g. L=12, n=3 -> 3, 7, 11.
        for (int64_t g = 1; g <= n; ++g) out.push_back(g * L / n - 1);
    } else {
        throw Error(c.where() + ": key 'attention_placement' must be \"top\" or \"interleave\"");
    }
    return out;
}

} // namespace

ModelSpec ModelSpec::from_json(const Json &j, const std::string &source) {
    Config c(j, "model", source);
    ModelSpec s;
    s.source = source;
    s.name = c.get_string("name", "model");
    s.vocab_size = c.require_int("vocab_size");
    s.hidden_size = c.require_int("hidden_size");
    s.num_layers = c.require_int("num_layers");
    s.seq_length = c.get_int("seq_length", 0); // informational: recipes and `describe` read it
    s.norm = c.get_string("norm", "layernorm");
    if (s.norm != "layernorm" && s.norm != "rmsnorm")
        throw Error(c.where() + ": key 'norm' must be \"layernorm\" or \"rmsnorm\", got \"" + s.norm + "\"");
    s.norm_eps = c.get_double("norm_eps", s.norm == "rmsnorm" ? 1e-6 : 1e-5);
    if (s.vocab_size <= 0 || s.hidden_size <= 0 || s.num_layers <= 0)
        throw Error(c.where() + ": vocab_size, hidden_size and num_layers must be positive");
    const int64_t L = s.num_layers;

    Json mixer = c.has("mixer") ? c.raw("mixer") : Json{{"type", "rwkv7_time_mix"}};
    Json ffn = c.has("ffn") ? c.raw("ffn") : Json{{"type", "rwkv_channel_mix"}};
    Json expert = c.has("expert") ? c.raw("expert") : ffn;
    if (c.has("intermediate_size")) {
        const double expansion = double(c.get_int("intermediate_size", 0)) / double(s.hidden_size);
        set_default(ffn, "expansion", expansion);
        set_default(expert, "expansion", expansion);
    }
    Json router = c.has("router") ? c.raw("router") : Json{{"type", "topk"}};
    if (c.has("load_balance_alpha")) set_default(router, "load_balance_alpha", c.get_double("load_balance_alpha", 0));
    int64_t top_k = c.get_int("top_k", 2);
    top_k = c.get_int("experts_per_tok", top_k);
    int64_t shared = c.get_int("num_shared_experts", 0);
    if (c.get_bool("shared_expert_enabled", false)) shared = std::max<int64_t>(shared, 1);
    Json moe = {{"type", "moe"},     {"num_experts", c.get_int("num_experts", 8)}, {"top_k", top_k},
                {"router", router},  {"expert", expert},                           {"num_shared_experts", shared}};
    if (c.has("capacity_factor")) moe["capacity_factor"] = c.get_double("capacity_factor", 0);

    const int64_t moe_every = c.get_int("moe_every", 0);
    const int64_t first_dense = c.get_int("first_dense_layers", 0); // DeepSeekMoE / TardBot: early layers stay dense
    for (int64_t i = 0; i < L; ++i) {
        const bool is_moe = moe_every > 0 && (i + 1) % moe_every == 0 && i >= first_dense;
        s.layers.push_back({mixer, is_moe ? moe : ffn});
    }

    Json attention = c.has("attention") ? c.raw("attention") : Json{{"type", "attention"}};
    if (c.has("num_heads")) set_default(attention, "num_heads", c.get_int("num_heads", 0));
    if (c.has("kv_heads")) set_default(attention, "num_kv_heads", c.get_int("kv_heads", 0));
    for (int64_t i : attention_layers(c.get_double("attention_ratio", 0.0), c.get_string("attention_placement", "interleave"), L, c))
        s.layers[static_cast<size_t>(i)].mixer = attention;

    Json mamba = c.has("mamba") ? c.raw("mamba") : Json{{"type", "mamba2"}};
    Json mamba_layers = c.raw("mamba_layers");
    if (!mamba_layers.is_null()) {
        if (!mamba_layers.is_array()) throw Error(c.where() + ": key 'mamba_layers' must be a list of layer indices");
        for (const auto &idx : mamba_layers) {
            if (!idx.is_number_integer() || idx.get<int64_t>() < 0 || idx.get<int64_t>() >= L)
                throw Error(c.where() + ": key 'mamba_layers' holds " + idx.dump() + ", not a layer index in 0.." +
                            std::to_string(L - 1));
            s.layers[static_cast<size_t>(idx.get<int64_t>())].mixer = mamba;
        }
    }

    if (c.has("layers")) {
        Json list = c.raw("layers");
        if (!list.is_array() || static_cast<int64_t>(list.size()) != L)
            throw Error(c.where() + ": key 'layers' must be a list of num_layers (" + std::to_string(L) + ") tables");
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

Layer::Layer(const LayerSpec &spec, const BlockContext &ctx, const ModelSpec &model, const Registry &registry) {
    const std::string &source = model.source;
    auto ln = [&](const char *name) { return register_module(name, Norm(model.norm, ctx.hidden_size, model.norm_eps)); };
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

OuterModules OuterModules::make(const ModelSpec &spec) {
    const int64_t V = spec.vocab_size, C = spec.hidden_size;
    return {torch::nn::Embedding(V, C), Norm(spec.norm, C, spec.norm_eps),
            torch::nn::Linear(torch::nn::LinearOptions(C, V).bias(false))};
}

Model::Model(ModelSpec spec, const Registry &registry) : spec_(std::move(spec)) {
    const int64_t V = spec_.vocab_size, C = spec_.hidden_size;
    OuterModules outer = OuterModules::make(spec_);
    emb = register_module("emb", outer.emb);
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < spec_.num_layers; ++i) {
        BlockContext ctx{C, i, spec_.num_layers};
        auto layer = std::make_shared<Layer>(spec_.layers[static_cast<size_t>(i)], ctx, spec_, registry);
        blocks->push_back(layer);
        layers_.push_back(layer);
    }
    ln_out = register_module("ln_out", outer.ln_out);
    head = register_module("head", outer.head);

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
    // Data sources produce CPU batches; the model's device decides.
    const torch::Tensor on_device = tokens.device() == device() ? tokens : tokens.to(device());
    torch::Tensor x = emb(on_device);
    ctx.v_first = torch::Tensor();
    ctx.token_ids = on_device;
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
    const torch::Tensor on_device = batch.device() == device() ? batch : batch.to(device());
    torch::Tensor logits = forward(on_device.slice(1, 0, T), nullptr, ctx);
    LossOutput out;
    out.ce = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                  on_device.slice(1, 1, T + 1).reshape({-1}));
    out.total = out.ce;
    for (const auto &l : ctx.aux_losses) out.total = out.total + l.value;
    out.aux = std::move(ctx.aux_losses);
    out.router_stats = std::move(ctx.router_stats);
    return out;
}

c10::Device Model::device() const { return emb->weight.device(); }

int64_t Model::num_parameters() const {
    int64_t n = 0;
    for (const auto &p : parameters()) n += p.numel();
    return n;
}

} // namespace cdrmix
