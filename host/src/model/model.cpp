#include "model/model.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <mutex>

namespace cdrmix {

// ---- spec ------------------------------------------------------------------------

namespace {

// Sets key in a block config unless the user already did.
void set_default(Json &cfg, const char *key, const Json &value) {
    if (!cfg.contains(key)) cfg[key] = value;
}

// The layers an attention schedule turns into attention layers.
std::vector<int64_t> attention_layers(double ratio, const std::string &placement, int64_t L) {
    const int64_t n = static_cast<int64_t>(std::lround(ratio * double(L)));
    std::vector<int64_t> out;
    if (n == 0) return out;
    if (placement == "top") {
        for (int64_t i = L - n; i < L; ++i) out.push_back(i);
    } else { // "interleave": n layers spread evenly, each closing its group: e.g. L=12, n=3 -> 3, 7, 11.
        for (int64_t g = 1; g <= n; ++g) out.push_back(g * L / n - 1);
    }
    return out;
}

} // namespace

const Schema &ModelSpec::schema() {
    static const Schema s = [] {
        Schema m("A model: embedding, num_layers layers of {time mixer, FFN or MoE}, final norm, head");
        m.string("name", "model", "name of the model (run folders and checkpoints show it)");
        m.integer("vocab_size", nullptr, "vocabulary size (scripts usually take it from the data)").required().range(1, 1 << 24);
        m.integer("hidden_size", nullptr, "width of the residual stream (C)").required().range(1, 1 << 16);
        m.integer("num_layers", nullptr, "number of layers").required().range(1, 4096);
        m.integer("seq_length", 0, "training context length the preset was made for (recipes and describe read it)").min(0);
        m.string("norm", "layernorm", "every norm of the model").one_of({"layernorm", "rmsnorm"});
        m.number("norm_eps", nullptr, "epsilon of every norm").min(0).default_is("1e-5 (layernorm), 1e-6 (rmsnorm)");
        m.table("mixer", "time-mixing block of every layer (default {type: rwkv7_time_mix})");
        m.table("ffn", "feed-forward block of every dense layer (default {type: rwkv_channel_mix})");
        m.integer("intermediate_size", nullptr, "hidden width of the FFN and experts (sets their expansion)").min(1);
        m.integer("moe_every", 0, "every moe_every-th layer's FFN is an MoE layer (0: none)").min(0);
        m.integer("first_dense_layers", 0, "layers before this index stay dense (DeepSeekMoE, TardBot)").min(0);
        m.integer("num_experts", 8, "routed experts per MoE layer").range(1, 1 << 16);
        m.integer("expert_parallel", 1, "ranks each MoE layer's experts are split over in a multi-process run "
                                        "(divides the world size and num_experts; one process holds every expert)")
            .range(1, 1 << 16);
        m.integer("top_k", nullptr, "experts per token, decided by the MoE layer")
            .min(1).alias("experts_per_tok").default_is("the router's own (2; 1 for switch and hash)");
        m.integer("num_shared_experts", 0, "experts every token passes through (DeepSeekMoE)").min(0);
        m.boolean("shared_expert_enabled", false, "one shared expert (TardBot's spelling)");
        m.number("capacity_factor", nullptr, "expert capacity as a multiple of the even share (0: dropless)").min(0);
        m.table("router", "router of every MoE layer (default {type: topk}); `cdrmix keys ROUTER` lists its keys");
        m.number("load_balance_alpha", nullptr, "sets the router's load_balance_alpha (Oxidizr's spelling)").min(0);
        m.table("expert", "block of every routed expert (default: the ffn)");
        m.number("attention_ratio", 0.0, "share of layers whose mixer is `attention` (RWKV-X hybrids)").range(0, 1);
        m.string("attention_placement", "interleave", "where the attention layers go").one_of({"top", "interleave"});
        m.table("attention", "the attention mixer (default {type: attention})");
        m.integer("num_heads", nullptr, "sets the attention mixer's num_heads").min(1);
        m.integer("kv_heads", nullptr, "sets the attention mixer's num_kv_heads").min(1);
        m.table("mamba", "the Mamba mixer of mamba_layers (default {type: mamba2})");
        m.list("mamba_layers", "0-based indices of the layers whose mixer is `mamba` (Oxidizr)");
        m.list("layers", "an explicit list of num_layers {mixer, ffn} tables, overriding the rules above");
        return m;
    }();
    return s;
}

ModelSpec ModelSpec::from_json(const Json &j, const std::string &source) {
    return from_config(Config(j, "model", source));
}

ModelSpec ModelSpec::from_config(const Config &given) {
    const Config c = schema().apply(given);
    ModelSpec s;
    s.source = given.source();
    s.name = c.get_string("name");
    s.vocab_size = c.get_int("vocab_size");
    s.hidden_size = c.get_int("hidden_size");
    s.num_layers = c.get_int("num_layers");
    s.seq_length = c.get_int("seq_length");
    s.expert_parallel = c.get_int("expert_parallel");
    s.norm = c.get_string("norm");
    s.norm_eps = c.get_double("norm_eps", s.norm == "rmsnorm" ? 1e-6 : 1e-5);
    const int64_t L = s.num_layers;

    // Each block config keeps its place in the spec, so errors inside it name
    // the file (or command line) its values came from.
    auto block = [&](const char *key, const Json &fallback) {
        return BlockSpec{c.has(key) ? c.raw(key) : fallback, std::string("/") + key};
    };
    BlockSpec mixer = block("mixer", Json{{"type", "rwkv7_time_mix"}});
    BlockSpec ffn = block("ffn", Json{{"type", "rwkv_channel_mix"}});
    Json expert = c.has("expert") ? c.raw("expert") : ffn.config;
    if (c.has("intermediate_size")) {
        const double expansion = double(c.get_int("intermediate_size")) / double(s.hidden_size);
        set_default(ffn.config, "expansion", expansion);
        set_default(expert, "expansion", expansion);
    }
    Json router = c.has("router") ? c.raw("router") : Json{{"type", "topk"}};
    if (c.has("load_balance_alpha")) set_default(router, "load_balance_alpha", c.get_double("load_balance_alpha"));
    int64_t shared = c.get_int("num_shared_experts");
    if (c.get_bool("shared_expert_enabled")) shared = std::max<int64_t>(shared, 1);
    // The MoE layer's keys carry the spec's own names, so its config sits at the spec's root.
    BlockSpec moe{{{"type", "moe"},
                   {"num_experts", c.get_int("num_experts")},
                   {"router", router},
                   {"expert", expert},
                   {"num_shared_experts", shared}},
                  ""};
    if (c.has("top_k")) moe.config["top_k"] = c.get_int("top_k"); // else the router's default
    if (c.has("capacity_factor")) moe.config["capacity_factor"] = c.get_double("capacity_factor");

    const int64_t moe_every = c.get_int("moe_every");
    const int64_t first_dense = c.get_int("first_dense_layers");
    for (int64_t i = 0; i < L; ++i) {
        const bool is_moe = moe_every > 0 && (i + 1) % moe_every == 0 && i >= first_dense;
        s.layers.push_back({mixer, is_moe ? moe : ffn});
    }

    BlockSpec attention = block("attention", Json{{"type", "attention"}});
    if (c.has("num_heads")) set_default(attention.config, "num_heads", c.get_int("num_heads"));
    if (c.has("kv_heads")) set_default(attention.config, "num_kv_heads", c.get_int("kv_heads"));
    for (int64_t i : attention_layers(c.get_double("attention_ratio"), c.get_string("attention_placement"), L))
        s.layers[static_cast<size_t>(i)].mixer = attention;

    BlockSpec mamba = block("mamba", Json{{"type", "mamba2"}});
    if (c.has("mamba_layers")) {
        for (const auto &idx : c.raw("mamba_layers")) {
            if (!idx.is_number_integer() || idx.get<int64_t>() < 0 || idx.get<int64_t>() >= L)
                throw Error(c.where("mamba_layers") + ": key 'mamba_layers' holds " + idx.dump() +
                            ", not a layer index in 0.." + std::to_string(L - 1));
            s.layers[static_cast<size_t>(idx.get<int64_t>())].mixer = mamba;
        }
    }

    if (c.has("layers")) {
        Json list = c.raw("layers");
        if (static_cast<int64_t>(list.size()) != L)
            throw Error(c.where("layers") + ": key 'layers' must be a list of num_layers (" + std::to_string(L) +
                        ") tables, got " + std::to_string(list.size()));
        for (size_t i = 0; i < list.size(); ++i) {
            const std::string path = "/layers/" + std::to_string(i);
            Config lc(list[i], "model.layers[" + std::to_string(i + 1) + "]", given.source(), given.sources(),
                      given.path() + path);
            if (lc.has("mixer")) s.layers[i].mixer = {lc.raw("mixer"), path + "/mixer"};
            if (lc.has("ffn")) s.layers[i].ffn = {lc.raw("ffn"), path + "/ffn"};
            lc.check_unused();
        }
    }
    s.source_json = given.value();
    s.sources = given.sources();
    s.source_path = given.path();
    return s;
}

// ---- layer -----------------------------------------------------------------------

Layer::Layer(const LayerSpec &spec, const BlockContext &ctx, const ModelSpec &model, const Registry &registry) {
    const std::string &source = model.source;
    auto ln = [&](const char *name) { return register_module(name, Norm(model.norm, ctx.hidden_size, model.norm_eps)); };
    if (ctx.layer == 0) ln0 = ln("ln0");
    ln1 = ln("ln1");
    const std::string where = "model layer " + std::to_string(ctx.layer);
    auto config_of = [&](const BlockSpec &b, const std::string &owner) {
        return Config(b.config, owner, source, model.sources, model.source_path + b.path);
    };
    att = register_module("att", registry.create_block(config_of(spec.mixer, where + " mixer"), ctx));
    ln2 = ln("ln2");
    ffn = register_module("ffn", registry.create_block(config_of(spec.ffn, where + " ffn"), ctx));
}

torch::Tensor Layer::forward(torch::Tensor x, BlockState *mixer_state, BlockState *ffn_state, ForwardContext &ctx) {
    if (ln0) x = ln0(x);
    x = x + att->forward(ln1(x), mixer_state, ctx);
    x = x + ffn->forward(ln2(x), ffn_state, ctx);
    return x;
}

void Layer::set_feed_forward(std::shared_ptr<Block> block) { ffn = replace_module("ffn", std::move(block)); }

// ---- model -----------------------------------------------------------------------

OuterModules OuterModules::make(const ModelSpec &spec) {
    const int64_t V = spec.vocab_size, C = spec.hidden_size;
    return {torch::nn::Embedding(V, C), Norm(spec.norm, C, spec.norm_eps),
            torch::nn::Linear(torch::nn::LinearOptions(C, V).bias(false))};
}

Model::Model(ModelSpec spec, const Registry &registry, std::shared_ptr<ExpertGroup> experts)
    : spec_(std::move(spec)), experts_(std::move(experts)) {
    const int64_t V = spec_.vocab_size, C = spec_.hidden_size;
    OuterModules outer = OuterModules::make(spec_);
    emb = register_module("emb", outer.emb);
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < spec_.num_layers; ++i) {
        BlockContext ctx{C, i, spec_.num_layers};
        ctx.expert_group = experts_.get();
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
    const bool checkpoint = !state && checkpointing_.mode != ActivationCheckpointing::Mode::None &&
                            torch::GradMode::is_enabled();
    for (size_t i = 0; i < layers_.size(); ++i) {
        ctx.layer = static_cast<int64_t>(i);
        if (checkpoint && checkpointing_.applies(ctx.layer))
            x = checkpointed_layer_forward(layers_[i], x, ctx);
        else
            x = layers_[i]->forward(x, state ? &state->mixer[i] : nullptr, state ? &state->ffn[i] : nullptr, ctx);
    }
    return head(ln_out(x));
}

LossOutput Model::loss(const torch::Tensor &batch, bool record_routing) {
    TORCH_CHECK(batch.dim() == 2 && batch.size(1) >= 2, "model.loss: batch must be [B,T+1], got ", batch.sizes());
    const int64_t T = batch.size(1) - 1;
    ForwardContext ctx;
    ctx.record_routing = record_routing;
    const torch::Tensor on_device = batch.device() == device() ? batch : batch.to(device());
    torch::Tensor logits = forward(on_device.slice(1, 0, T), nullptr, ctx);
    // 16-bit logits (bf16 weights) lose the log-softmax's small differences: the loss is float32.
    if (logits.scalar_type() == torch::kBFloat16 || logits.scalar_type() == torch::kHalf)
        logits = logits.to(torch::kFloat32);
    LossOutput out;
    out.ce = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                  on_device.slice(1, 1, T + 1).reshape({-1}));
    out.total = out.ce;
    for (const auto &l : ctx.aux_losses) out.total = out.total + l.value;
    out.aux = std::move(ctx.aux_losses);
    out.routing = std::move(ctx.routing);
    return out;
}

void Model::set_activation_checkpointing(const ActivationCheckpointing &checkpointing) {
    if (experts_ && checkpointing.mode != ActivationCheckpointing::Mode::None)
        throw Error("train.checkpoint_activations = \"" + checkpointing.name() +
                    "\" is not supported with the experts split over ranks (model.expert_parallel > 1): "
                    "recomputing a layer would repeat its all-to-all exchanges inside backward; use \"none\"");
    checkpointing_ = checkpointing;
}

c10::Device Model::device() const { return emb->weight.device(); }

int64_t Model::num_parameters() const {
    int64_t n = 0;
    for (const auto &p : parameters()) n += p.numel();
    return n;
}

std::vector<int64_t> Model::swap_router(int64_t layer, const Json &router, const Registry &registry, uint64_t seed) {
    const int64_t L = spec_.num_layers;
    if (layer >= L) throw Error("swap_router: no layer " + std::to_string(layer) + " (layers 0.." + std::to_string(L - 1) + ")");
    if (experts_) throw Error("swap_router: not with the experts split over ranks (expert parallelism)");
    std::vector<int64_t> targets;
    for (int64_t i = 0; i < L; ++i) {
        if (layer >= 0 && i != layer) continue;
        const std::string type = spec_.layers[static_cast<size_t>(i)].ffn.config.value("type", "");
        if (type == "moe") targets.push_back(i);
        else if (layer >= 0)
            throw Error("swap_router: layer " + std::to_string(i) + " has no router (its feed-forward is '" + type +
                        "', not an MoE layer)");
    }
    if (targets.empty()) throw Error("swap_router: the model has no MoE layer");

    std::vector<std::shared_ptr<Block>> built;
    {
        // The generator's mutex is held only to read and set its state: the
        // blocks' initialisers take it themselves while they draw.
        at::Generator gen = at::detail::getDefaultCPUGenerator(); // a handle to the shared generator
        torch::Tensor saved;
        {
            std::lock_guard<std::mutex> lock(gen.mutex());
            saved = gen.get_state();
            gen.set_current_seed(seed);
        }
        auto restore = [&] {
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_state(saved);
        };
        try {
            for (int64_t i : targets) {
                Json cfg = spec_.layers[static_cast<size_t>(i)].ffn.config;
                cfg["router"] = router;
                BlockContext ctx{spec_.hidden_size, i, L};
                built.push_back(registry.create_block(
                    Config(cfg, "model layer " + std::to_string(i) + " ffn (swap_router)", spec_.source), ctx));
            }
        } catch (...) {
            restore();
            throw;
        }
        restore();
    }
    torch::NoGradGuard no_grad;
    const auto kept = [](const std::string &name) { return name.rfind("router.", 0) != 0; };
    for (size_t n = 0; n < targets.size(); ++n) {
        const auto i = static_cast<size_t>(targets[n]);
        const Block &old = layers_[i]->feed_forward();
        auto &block = *built[n];
        const auto old_params = old.named_parameters(), old_buffers = old.named_buffers();
        if (!old_params.is_empty()) block.to(old_params.begin()->value().device(), old_params.begin()->value().scalar_type());
        auto copy = [&](const std::string &name, torch::Tensor dst, const torch::Tensor *src) {
            if (!src || src->sizes() != dst.sizes())
                throw Error("swap_router: layer " + std::to_string(i) + "'s '" + name + "' has no counterpart of its shape");
            dst.copy_(*src);
        };
        for (const auto &p : block.named_parameters())
            if (kept(p.key())) copy(p.key(), p.value(), old_params.find(p.key()));
        for (const auto &b : block.named_buffers())
            if (kept(b.key())) copy(b.key(), b.value(), old_buffers.find(b.key()));
    }
    for (size_t n = 0; n < targets.size(); ++n) {
        const auto i = static_cast<size_t>(targets[n]);
        layers_[i]->set_feed_forward(built[n]);
        spec_.layers[i].ffn.config["router"] = router;
        // A per-layer override in the spec's own JSON, so the checkpoint's model.json rebuilds this layer.
        Json &list = spec_.source_json["layers"];
        if (!list.is_array()) list = Json::array();
        while (static_cast<int64_t>(list.size()) < L) list.push_back(Json::object());
        list[i]["ffn"] = spec_.layers[i].ffn.config;
    }
    return targets;
}

} // namespace cdrmix
