// Mixture-of-Experts layer: a router picks k experts per token, and each expert
// runs only on the tokens sent to it (sparse dispatch: tokens grouped by expert,
// outputs scaled by the router weights and summed back with index_add), so cost
// grows with k, not with the number of experts. dispatch = "dense" instead runs
// every expert on every token and masks: the reference the tests and benchmarks
// compare against.
//
// Config: num_experts (8), top_k (2), router ({type: topk}), expert
// ({type: rwkv_channel_mix}), token_shift (true: RWKV's shift, shared by all
// experts, applied before routing), dispatch ("sparse" | "dense").
// State: {previous token's x [B,C]} when token_shift is on.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

using torch::Tensor;

class MoE : public cdrmix::Block {
public:
    MoE(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) : layer_(ctx.layer) {
        const int64_t C = ctx.hidden_size;
        E_ = cfg.get_int("num_experts", 8);
        const int64_t k = cfg.get_int("top_k", 2);
        if (E_ < 1 || k < 1 || k > E_)
            throw cdrmix::Error(cfg.where() + ": need 1 <= top_k <= num_experts (got top_k " + std::to_string(k) +
                                ", num_experts " + std::to_string(E_) + ")");
        const std::string dispatch = cfg.get_string("dispatch", "sparse");
        if (dispatch != "sparse" && dispatch != "dense")
            throw cdrmix::Error(cfg.where() + ": key 'dispatch' must be \"sparse\" or \"dense\"");
        dense_ = dispatch == "dense";

        cdrmix::Json router_cfg = cfg.has("router") ? cfg.raw("router") : cdrmix::Json{{"type", "topk"}};
        if (!router_cfg.is_object()) throw cdrmix::Error(cfg.where() + ": key 'router' must be a table");
        if (!router_cfg.contains("top_k")) router_cfg["top_k"] = k;
        cdrmix::Json expert_cfg = cfg.has("expert") ? cfg.raw("expert") : cdrmix::Json{{"type", "rwkv_channel_mix"}};

        if (cfg.get_bool("token_shift", true)) {
            torch::NoGradGuard no_grad;
            const double r10 = 1.0 - double(ctx.layer) / double(ctx.num_layers);
            x_k = register_parameter("x_k", 1.0 - cdrmix::channel_ramp(C).pow(std::pow(r10, 4.0)));
        }
        const auto &registry = cdrmix::Registry::global();
        router = register_module("router", registry.create_router(cdrmix::Config(router_cfg, cfg.owner() + " router", cfg.source()),
                                                                  cdrmix::RouterContext{C, E_, ctx.layer}));
        if (router->num_experts() != E_)
            throw cdrmix::Error(cfg.where() + ": router reports " + std::to_string(router->num_experts()) +
                                " experts, layer has " + std::to_string(E_));
        experts = register_module("experts", torch::nn::ModuleList());
        cdrmix::BlockContext ectx = ctx;
        ectx.expert = true;
        for (int64_t e = 0; e < E_; ++e) {
            auto block = registry.create_block(cdrmix::Config(expert_cfg, cfg.owner() + " expert", cfg.source()), ectx);
            if (!block->tokenwise())
                throw cdrmix::Error(cfg.where() + ": expert type '" + expert_cfg.value("type", "?") +
                                    "' is not token-wise, so it cannot be an expert");
            experts->push_back(block);
            expert_blocks_.push_back(block);
        }
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &ctx) override {
        const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
        Tensor h = x;
        if (x_k.defined()) {
            const bool has_state = state && state->size() == 1;
            h = x + (cdrmix::shift_tokens(x, has_state ? (*state)[0] : Tensor()) - x) * x_k;
            if (state) *state = {x.select(1, T - 1)};
        }
        Tensor flat = h.reshape({B * T, C});
        cdrmix::RouterOutput route = router->route(flat);
        Tensor out = dense_ ? dispatch_dense(flat, route) : dispatch_sparse(flat, route);
        if (is_training()) {
            for (const auto &l : route.losses)
                ctx.aux_losses.push_back({"layer" + std::to_string(layer_) + "." + l.name, l.value});
            ctx.router_stats.push_back(cdrmix::compute_router_stats(route, E_, layer_));
        }
        return out.view({B, T, C});
    }

private:
    Tensor dispatch_sparse(const Tensor &flat, const cdrmix::RouterOutput &route) {
        const int64_t N = flat.size(0), k = route.indices.size(1);
        Tensor expert_of = route.indices.reshape({-1});                              // [N*k]
        Tensor token_of = torch::arange(N, expert_of.options()).repeat_interleave(k); // [N*k]
        Tensor weight_of = route.weights.reshape({-1});
        Tensor order = std::get<1>(expert_of.sort(/*stable=*/true, 0, false));
        Tensor counts = torch::bincount(expert_of, {}, E_).cpu();
        const int64_t *count = counts.data_ptr<int64_t>();
        Tensor out = torch::zeros_like(flat);
        int64_t offset = 0;
        for (int64_t e = 0; e < E_; ++e) {
            if (count[e] == 0) continue;
            Tensor slots = order.slice(0, offset, offset + count[e]);
            offset += count[e];
            Tensor tokens = token_of.index_select(0, slots);
            Tensor y = expert_blocks_[static_cast<size_t>(e)]->forward_tokens(flat.index_select(0, tokens));
            out.index_add_(0, tokens, y * weight_of.index_select(0, slots).unsqueeze(1).to(y.dtype()));
        }
        return out;
    }

    Tensor dispatch_dense(const Tensor &flat, const cdrmix::RouterOutput &route) {
        // combine[n, e] = router weight of expert e for token n (0 when not chosen).
        Tensor combine = torch::zeros({flat.size(0), E_}, route.weights.options())
                             .scatter_add(1, route.indices, route.weights);
        Tensor out = torch::zeros_like(flat);
        for (int64_t e = 0; e < E_; ++e)
            out = out + expert_blocks_[static_cast<size_t>(e)]->forward_tokens(flat) *
                            combine.select(1, e).unsqueeze(1).to(flat.dtype());
        return out;
    }

    int64_t layer_, E_;
    bool dense_ = false;
    Tensor x_k;
    std::shared_ptr<cdrmix::Router> router;
    torch::nn::ModuleList experts;
    std::vector<std::shared_ptr<cdrmix::Block>> expert_blocks_;
};

} // namespace

CDRMIX_PLUGIN("moe", "1.0.0", "Mixture-of-Experts layer with sparse dispatch") {
    registry.add_block("moe", "MoE layer: a router plugin picks top-k of N expert blocks per token",
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) { return std::make_shared<MoE>(c, ctx); });
}
