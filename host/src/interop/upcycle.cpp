#include "interop/upcycle.hpp"

#include "model/model.hpp"
#include "train/checkpoint.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/version.hpp>

#include <torch/torch.h>

#include <regex>
#include <set>

namespace cdrmix {

namespace {

// The dense spec with every moe_every-th FFN an MoE layer of copies of it.
Json moe_spec(const Json &dense, const UpcycleOptions &o, const std::string &where) {
    if (dense.value("moe_every", 0) > 0 || dense.contains("layers"))
        throw Error(where + ": the model already has MoE layers or an explicit layers list; upcycle takes a dense model");
    const Json ffn = dense.value("ffn", Json{{"type", "rwkv_channel_mix"}});
    // The MoE layer's token shift is the channel mix's x_k; other FFNs have none to carry over.
    if (ffn.value("type", "") != "rwkv_channel_mix")
        throw Error(where + ": upcycle copies rwkv_channel_mix FFNs, this model's are " + ffn.value("type", "?"));
    Json spec = dense;
    spec["moe_every"] = o.moe_every;
    spec["num_experts"] = o.experts;
    spec["top_k"] = o.top_k;
    spec["num_shared_experts"] = o.shared_experts;
    spec["router"] = {{"type", o.router}};
    spec["expert"] = ffn; // the experts are the dense FFN
    return spec;
}

} // namespace

const Schema &UpcycleOptions::schema() {
    static const Schema s = [] {
        Schema k("Sparse upcycling of a dense checkpoint into an MoE one (`cdrmix upcycle`)");
        k.string("checkpoint", nullptr, "the dense model's checkpoint (folder, run folder or checkpoints/)").required();
        k.string("out", nullptr, "the checkpoint folder to create (new or empty)").required();
        k.integer("experts", nullptr, "routed experts per MoE layer").required().range(1, 1 << 16);
        k.integer("top_k", nullptr, "experts per token").required().min(1);
        k.integer("moe_every", 1, "every moe_every-th layer's FFN becomes an MoE layer").min(1);
        k.integer("shared_experts", 0, "always-on experts per MoE layer (copies too)").min(0);
        k.string("router", "topk", "router of every MoE layer (exact start only when its weights sum to 1: topk)");
        k.number("noise", 0.0, "each copied weight times (1 + noise * N(0,1)), per expert").min(0);
        k.integer("seed", 0, "seed of the noise").min(0);
        return k;
    }();
    return s;
}

UpcycleOptions UpcycleOptions::from_config(const Config &config) {
    const Config c = schema().apply(config);
    UpcycleOptions o;
    o.checkpoint = c.get_string("checkpoint");
    o.out = c.get_string("out");
    o.experts = c.get_int("experts");
    o.top_k = c.get_int("top_k");
    o.moe_every = c.get_int("moe_every");
    o.shared_experts = c.get_int("shared_experts");
    o.router = c.get_string("router");
    o.noise = c.get_double("noise");
    o.seed = c.get_int("seed");
    return o;
}

std::string upcycle(const UpcycleOptions &o, const Registry &registry, std::string *report) {
    const std::string dir = resolve_checkpoint(o.checkpoint);
    const LoadedCheckpoint dense = load_checkpoint(dir, registry);
    const Json spec = moe_spec(dense.model->spec().source_json, o, dir + "/model.json");
    Model model(ModelSpec::from_json(spec, dir + "/model.json (upcycled)"), registry);

    std::map<std::string, at::Tensor> from;
    for (const auto &p : dense.model->named_parameters()) from.emplace(p.key(), p.value());
    std::set<std::string> used;
    // An expert's weight X is the dense FFN's blocks.N.ffn.X.
    static const std::regex expert(R"(blocks\.(\d+)\.ffn\.(experts|shared_experts)\.\d+\.(.+))");
    torch::manual_seed(uint64_t(o.seed));
    torch::NoGradGuard no_grad;
    const double out_scale = 1.0 / double(o.shared_experts + 1);
    int64_t copies = 0;
    for (auto &p : model.named_parameters()) {
        at::Tensor &dst = p.value();
        std::smatch m;
        std::string source = p.key();
        const bool is_expert = std::regex_match(p.key(), m, expert);
        if (is_expert) source = "blocks." + m[1].str() + ".ffn." + m[3].str();
        auto it = from.find(source);
        if (it == from.end()) {
            if (p.key().find(".ffn.router.") != std::string::npos) continue; // routers start from their init
            throw Error(dir + ": the upcycled model's '" + p.key() + "' has no counterpart in the dense model");
        }
        if (it->second.sizes() != dst.sizes())
            throw Error(dir + ": '" + source + "' has shape " + c10::str(it->second.sizes()) + ", the upcycled '" +
                        p.key() + "' " + c10::str(dst.sizes()));
        used.insert(source);
        dst.copy_(it->second);
        if (!is_expert) continue;
        ++copies;
        if (m[3].str() == "value.weight") dst.mul_(out_scale);
        if (o.noise > 0) dst.mul_(1.0 + o.noise * torch::randn_like(dst));
    }
    for (const auto &entry : from)
        if (!used.count(entry.first))
            throw Error(dir + ": the dense model's '" + entry.first + "' has no place in the upcycled model");

    const Json record = {{"format", "upcycle"},
                         {"source", dir},
                         {"experts", o.experts},
                         {"top_k", o.top_k},
                         {"moe_every", o.moe_every},
                         {"shared_experts", o.shared_experts},
                         {"router", o.router},
                         {"noise", o.noise},
                         {"seed", o.seed},
                         {"cdrmix", kSdkVersion}};
    const std::string out = save_derived_checkpoint(o.out, model, *dense.tokenizer, record);
    if (report)
        *report = "upcycled " + dir + " into " + out + ": " + std::to_string(dense.model->num_parameters()) +
                  " -> " + std::to_string(model.num_parameters()) + " parameters, " + std::to_string(copies) +
                  " expert weights copied from the dense FFNs";
    return out;
}

} // namespace cdrmix
