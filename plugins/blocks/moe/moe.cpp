// Mixture-of-Experts layer: a router picks k experts per token, and each expert
// runs only on the tokens sent to it (sparse dispatch: tokens grouped by expert,
// outputs scaled by the router weights and summed back with index_add), so cost
// grows with k, not with the number of experts. dispatch = "dense" instead runs
// every expert on every token and masks: the reference the tests and benchmarks
// compare against.
//
// Capacity: with capacity_factor phi > 0 each expert takes at most
// ceil(phi * N * k / E) of the N*k routed slots; the rest are dropped by
// drop_policy ("probability": lowest router weight first; "position": first
// choices before second choices, earlier tokens first, as in Switch). A token
// that loses all its slots passes through the residual unchanged and is counted.
// Shared experts (DeepSeekMoE) see every token and are added with weight 1.
// Fine-grained experts (DeepSeekMoE): granularity m multiplies num_experts and
// top_k by m and divides the expert's expansion by m, keeping compute unchanged.
//
// The router seam: this layer decides {hidden size, experts, top_k, layer}
// once and hands it to the router in RouterContext. top_k comes from this
// layer's config, else from the router's registered default (1 for switch);
// a top_k inside the router table is accepted only when it agrees.
// Routing is recorded (ForwardContext::record_routing) only when the caller
// will compute statistics from it: nothing is read back to the host here.
//
// Expert parallelism (BlockContext::expert_group, cdrmix/expert_group.hpp):
// this rank keeps its member's contiguous share of the experts; each slot's
// token goes to the member holding its expert with one exchange, the expert
// outputs come back with a second, and the weighting and the sum stay here,
// so routing, capacity and shared experts are computed as in one process.
// Keys: `cdrmix keys moe`. State: {previous token's x [B,C]} when token_shift is on.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

using torch::Tensor;

class MoE : public cdrmix::Block {
public:
    MoE(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) : layer_(ctx.layer) {
        const int64_t C = ctx.hidden_size;
        const cdrmix::Registry &registry = *ctx.registry;
        const int64_t granularity = cfg.get_int("granularity");
        E_ = cfg.get_int("num_experts") * granularity;
        capacity_factor_ = cfg.get_double("capacity_factor");
        eval_capacity_factor_ = cfg.has("eval_capacity_factor") ? cfg.get_double("eval_capacity_factor") : capacity_factor_;
        drop_by_position_ = cfg.get_string("drop_policy") == "position";
        dense_ = cfg.get_string("dispatch") == "dense";

        cdrmix::Config router_cfg = cfg.child("router", "MoE layer " + std::to_string(ctx.layer) + " router");
        cdrmix::Json router_json = router_cfg.value().empty() ? cdrmix::Json{{"type", "topk"}} : router_cfg.value();
        const std::string router_type = router_json.value("type", "");
        const int64_t k = decide_top_k(cfg, router_cfg, router_json, router_type, registry) * granularity;
        if (k > E_)
            throw cdrmix::Error(cfg.where("top_k") + ": top_k (" + std::to_string(k) + ") is larger than num_experts (" +
                                std::to_string(E_) + ")");
        per_member_ = E_;
        if (ctx.expert_group && ctx.expert_group->size() > 1) {
            group_ = ctx.expert_group;
            const int64_t P = group_->size();
            if (E_ % P != 0)
                throw cdrmix::Error(cfg.where("num_experts") + ": " + std::to_string(E_) +
                                    " routed experts cannot be split evenly over expert_parallel " + std::to_string(P) +
                                    " ranks");
            if (dense_)
                throw cdrmix::Error(cfg.where("dispatch") +
                                    ": dispatch 'dense' (the single-process reference) cannot run expert-parallel; "
                                    "use 'sparse'");
            per_member_ = E_ / P;
            first_local_ = group_->rank() * per_member_;
        }
        cdrmix::Json expert_cfg = cfg.has("expert") ? cfg.raw("expert") : cdrmix::Json{{"type", "rwkv_channel_mix"}};
        const int64_t num_shared = cfg.get_int("num_shared_experts");
        cdrmix::Json routed_cfg = expert_cfg;
        if (granularity > 1) routed_cfg["expansion"] = expert_cfg.value("expansion", 4.0) / double(granularity);

        if (cfg.get_bool("token_shift")) {
            torch::NoGradGuard no_grad;
            const double r10 = 1.0 - double(ctx.layer) / double(ctx.num_layers);
            x_k = register_parameter("x_k", 1.0 - cdrmix::channel_ramp(C).pow(std::pow(r10, 4.0)));
        }
        router = register_module("router", registry.create_router(router_cfg.with_value(router_json, router_cfg.owner()),
                                                                  cdrmix::RouterContext{C, E_, k, ctx.layer}));
        if (router->num_experts() != E_ || router->top_k() != k)
            throw cdrmix::Error(cfg.where() + ": router '" + router_type + "' reports " +
                                std::to_string(router->num_experts()) + " experts and top_k " +
                                std::to_string(router->top_k()) + "; the layer gave it " + std::to_string(E_) +
                                " and " + std::to_string(k));
        cdrmix::BlockContext ectx = ctx;
        ectx.expert = true;
        const cdrmix::Config expert_where = cfg.child("expert", "MoE layer " + std::to_string(ctx.layer) + " expert");
        // Experts [keep_from, keep_to) are registered under their index; every
        // one is built, so the random initialisation does not depend on placement.
        auto make_experts = [&](const char *name, const cdrmix::Json &ecfg, int64_t count, int64_t keep_from,
                                int64_t keep_to, std::vector<std::shared_ptr<cdrmix::Block>> &out) {
            auto holder = register_module(name, std::make_shared<torch::nn::Module>());
            for (int64_t e = 0; e < count; ++e) {
                auto block = registry.create_block(expert_where.with_value(ecfg, expert_where.owner()), ectx);
                if (!block->tokenwise())
                    throw cdrmix::Error(cfg.where("expert") + ": expert type '" + ecfg.value("type", "?") +
                                        "' is not token-wise, so it cannot be an expert");
                if (e < keep_from || e >= keep_to) continue;
                holder->register_module(std::to_string(e), block);
                out.push_back(block);
            }
            return holder;
        };
        auto routed = make_experts("experts", routed_cfg, E_, first_local_, first_local_ + per_member_, expert_blocks_);
        if (group_) group_->hold(*routed);
        if (num_shared > 0) make_experts("shared_experts", expert_cfg, num_shared, 0, num_shared, shared_blocks_);
    }

    // top_k per token before granularity: this layer's key, else the router
    // table's (tolerated when it is the only one), else the router's default.
    static int64_t decide_top_k(const cdrmix::Config &cfg, const cdrmix::Config &router_cfg, cdrmix::Json &router_json,
                                const std::string &router_type, const cdrmix::Registry &registry) {
        int64_t k = 0;
        if (cfg.has("top_k")) k = cfg.get_int("top_k");
        if (router_json.contains("top_k")) {
            const int64_t in_router = router_cfg.get_int("top_k");
            if (k > 0 && in_router != k)
                throw cdrmix::Error(router_cfg.where("top_k") + ": top_k is " + std::to_string(in_router) +
                                    " in the router table but " + std::to_string(k) + " on the MoE layer (" +
                                    cfg.source_of("top_k") + "): set it once, as the layer's top_k");
            k = in_router;
            router_json.erase("top_k");
        }
        if (k == 0) k = registry.info(cdrmix::PluginKind::Router, router_type, router_cfg.where("type")).default_top_k;
        return k;
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
        cdrmix::RouteInput in;
        if (ctx.token_ids.defined()) in.token_ids = ctx.token_ids.reshape({-1});
        in.decoding = ctx.decoding;
        cdrmix::RouterOutput route = router->route(flat, in);
        const double phi = is_training() ? capacity_factor_ : eval_capacity_factor_;
        if (phi > 0) apply_capacity(route, phi);
        Tensor out = dense_ ? dispatch_dense(flat, route) : group_ ? dispatch_exchanged(flat, route) : dispatch_sparse(flat, route);
        for (const auto &shared : shared_blocks_) out = out + shared->forward_tokens(flat);
        if (is_training())
            for (const auto &l : route.losses)
                ctx.aux_losses.push_back({"layer" + std::to_string(layer_) + "." + l.name, l.value});
        if (ctx.record_routing) {
            cdrmix::RoutingRecord rec{layer_, E_, route.indices.detach(), route.probs.detach(), {}};
            for (const auto &l : route.losses) rec.losses.push_back({l.name, l.value.detach()});
            ctx.routing.push_back(std::move(rec));
        }
        return out.view({B, T, C});
    }

    // Marks slots beyond each expert's capacity as empty (-1).
    void apply_capacity(cdrmix::RouterOutput &route, double phi) const {
        torch::NoGradGuard no_grad;
        const int64_t N = route.indices.size(0), k = route.indices.size(1);
        const int64_t capacity = static_cast<int64_t>(std::ceil(phi * double(N * k) / double(E_)));
        Tensor expert_of = route.indices.reshape({-1});
        // Priority within an expert: 0 is kept first.
        Tensor priority;
        if (drop_by_position_) {
            // slot (n, j) -> j * N + n: every first choice before any second choice, earlier tokens first.
            priority = (torch::arange(k, expert_of.options()).unsqueeze(0) * N +
                        torch::arange(N, expert_of.options()).unsqueeze(1))
                           .reshape({-1});
        } else {
            priority = torch::argsort(torch::argsort(-route.weights.reshape({-1}).to(torch::kFloat64)));
        }
        // Empty slots sort after every expert and are never kept.
        Tensor group = torch::where(expert_of >= 0, expert_of, torch::full_like(expert_of, E_));
        Tensor order = torch::argsort(group * (N * k) + priority);
        Tensor sorted_group = group.index_select(0, order);
        Tensor counts = torch::bincount(sorted_group, {}, E_ + 1);
        Tensor starts = counts.cumsum(0) - counts;
        Tensor rank = torch::arange(N * k, expert_of.options()) - starts.index_select(0, sorted_group);
        Tensor keep_sorted = (rank < capacity) & (sorted_group < E_);
        Tensor keep = torch::empty_like(keep_sorted).scatter_(0, order, keep_sorted);
        route.indices = torch::where(keep, expert_of, torch::full_like(expert_of, -1)).view({N, k});
    }

    int64_t expert_parameters() const override {
        int64_t n = 0;
        for (const auto &p : expert_blocks_.front()->parameters()) n += p.numel();
        return n;
    }

    int64_t active_parameters() const override {
        return cdrmix::Block::active_parameters() - (per_member_ - router->top_k()) * expert_parameters();
    }

private:
    // The filled slots, sorted by expert (stable: token order within an expert).
    struct Slots {
        Tensor token, weight; // per slot
        std::vector<int64_t> per_expert; // slots of each expert
    };
    Slots sorted_slots(const Tensor &flat, const cdrmix::RouterOutput &route) const {
        const int64_t N = flat.size(0), k = route.indices.size(1);
        Tensor expert_of = route.indices.reshape({-1});                              // [N*k]
        Tensor token_of = torch::arange(N, expert_of.options()).repeat_interleave(k); // [N*k]
        Tensor weight_of = route.weights.reshape({-1});
        Tensor filled = (expert_of >= 0).nonzero().reshape({-1}); // skip empty slots
        if (filled.size(0) != expert_of.size(0)) {
            expert_of = expert_of.index_select(0, filled);
            token_of = token_of.index_select(0, filled);
            weight_of = weight_of.index_select(0, filled);
        }
        Tensor order = std::get<1>(expert_of.sort(/*stable=*/true, 0, false));
        Tensor counts = torch::bincount(expert_of, {}, E_).cpu();
        const int64_t *count = counts.data_ptr<int64_t>();
        return {token_of.index_select(0, order), weight_of.index_select(0, order),
                std::vector<int64_t>(count, count + E_)};
    }

    // Each local expert's slice of rows [sum(counts), C], grouped by expert; returns its outputs in the same order.
    Tensor run_local_experts(const Tensor &rows, const std::vector<int64_t> &counts) {
        std::vector<Tensor> outs;
        int64_t offset = 0;
        for (size_t e = 0; e < counts.size(); ++e) {
            if (counts[e] == 0) continue;
            outs.push_back(expert_blocks_[e]->forward_tokens(rows.narrow(0, offset, counts[e])));
            offset += counts[e];
        }
        // With no rows, the (empty) rows themselves keep the path to the loss intact.
        return outs.empty() ? rows : torch::cat(outs);
    }

    // .to(out's dtype): under bf16 autocast the experts' matmuls return bf16 into an fp32 sum.
    static Tensor combine(const Tensor &flat, const Slots &s, const Tensor &y) {
        return torch::zeros_like(flat).index_add(0, s.token, (y * s.weight.unsqueeze(1).to(y.dtype())).to(flat.dtype()));
    }

    Tensor dispatch_sparse(const Tensor &flat, const cdrmix::RouterOutput &route) {
        const Slots s = sorted_slots(flat, route);
        return combine(flat, s, run_local_experts(flat.index_select(0, s.token), s.per_expert));
    }

    // Slots travel to the member holding their expert (sorted by expert, so
    // member by member), each member runs its experts over the rows it got
    // from everyone, and the outputs travel back in the order they came.
    Tensor dispatch_exchanged(const Tensor &flat, const cdrmix::RouterOutput &route) {
        const Slots s = sorted_slots(flat, route);
        const int64_t P = group_->size(), L = per_member_;
        std::vector<int64_t> to_member(size_t(P), 0), received;
        for (int64_t e = 0; e < E_; ++e) to_member[size_t(e / L)] += s.per_expert[size_t(e)];
        // Per-expert counts first: member m gets [L] counts from each member, for its own experts.
        Tensor counts = torch::tensor(s.per_expert, torch::kInt64).unsqueeze(1);
        std::vector<int64_t> per_member(size_t(P), L), unused;
        const Tensor from = group_->exchange(counts, per_member, unused).view({P, L}); // [source, local expert]
        const Tensor rows = group_->exchange(flat.index_select(0, s.token), to_member, received);
        // Rows arrive by source, then by expert: regroup them by local expert for the experts.
        const Tensor expert_of_row = torch::arange(L).repeat({P}).repeat_interleave(from.reshape({-1}));
        const Tensor by_expert = std::get<1>(expert_of_row.sort(/*stable=*/true, 0, false)).to(rows.device());
        const Tensor local_counts = from.sum(0);
        const std::vector<int64_t> per_local(local_counts.data_ptr<int64_t>(), local_counts.data_ptr<int64_t>() + L);
        const Tensor y_sorted = run_local_experts(rows.index_select(0, by_expert), per_local);
        const Tensor y = torch::empty_like(y_sorted).index_copy(0, by_expert, y_sorted);
        std::vector<int64_t> back;
        return combine(flat, s, group_->exchange(y, received, back));
    }

    Tensor dispatch_dense(const Tensor &flat, const cdrmix::RouterOutput &route) {
        // combine[n, e] = router weight of expert e for token n (0 when not chosen).
        Tensor filled = route.indices >= 0;
        Tensor combine = torch::zeros({flat.size(0), E_}, route.weights.options())
                             .scatter_add(1, route.indices.clamp_min(0), route.weights * filled.to(route.weights.dtype()));
        Tensor out = torch::zeros_like(flat);
        for (int64_t e = 0; e < E_; ++e)
            out = out + expert_blocks_[static_cast<size_t>(e)]->forward_tokens(flat) *
                            combine.select(1, e).unsqueeze(1).to(flat.dtype());
        return out;
    }

    int64_t layer_, E_;
    cdrmix::ExpertGroup *group_ = nullptr;
    int64_t per_member_ = 0, first_local_ = 0; // this rank's experts: [first_local_, first_local_ + per_member_)
    bool dense_ = false;
    double capacity_factor_ = 0, eval_capacity_factor_ = 0;
    bool drop_by_position_ = false;
    Tensor x_k;
    std::shared_ptr<cdrmix::Router> router;
    std::vector<std::shared_ptr<cdrmix::Block>> expert_blocks_, shared_blocks_;
};

} // namespace

namespace {

cdrmix::Schema moe_keys() {
    cdrmix::Schema s("MoE layer: a router plugin picks top-k of N expert blocks per token");
    s.integer("num_experts", 8, "routed experts").range(1, 1 << 16);
    s.integer("top_k", nullptr, "experts per token").min(1).default_is("the router's own (2; 1 for switch and hash)");
    s.table("router", "the router (default {type: topk}); `cdrmix keys ROUTER` lists its keys");
    s.table("expert", "block of every expert, token-wise (default {type: rwkv_channel_mix})");
    s.integer("num_shared_experts", 0, "experts every token passes through, added with weight 1").min(0);
    s.integer("granularity", 1, "fine-grained experts: num_experts and top_k times m, expansion / m").min(1);
    s.number("capacity_factor", 0.0, "each expert takes at most ceil(phi * N * k / E) slots (0: dropless)").min(0);
    s.number("eval_capacity_factor", nullptr, "capacity factor in eval mode").min(0).default_is("capacity_factor");
    s.string("drop_policy", "probability", "which slots go first when an expert is full").one_of({"probability", "position"});
    s.boolean("token_shift", true, "RWKV's token shift, shared by all experts, before routing");
    s.string("dispatch", "sparse", "sparse: each expert sees its tokens; dense: every expert every token (reference)")
        .one_of({"sparse", "dense"});
    return s;
}

} // namespace

CDRMIX_PLUGIN("moe", "1.1.0", "Mixture-of-Experts layer with sparse dispatch") {
    registry.add_block("moe", "MoE layer: a router plugin picks top-k of N expert blocks per token", moe_keys(),
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) { return std::make_shared<MoE>(c, ctx); });
}
