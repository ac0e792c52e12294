// Router plugins (switch, expert_choice, aux_free, hash, sinkhorn, and topk where
// a baseline is needed), created through the registry as the MoE layer does:
// output shapes and valid indices, the shared balance losses, each router's
// balancing promise (aux-free bias, expert-choice quotas, Sinkhorn against plain
// top-k), hash stability, decoding fallbacks, finite-difference gradients; and
// the MoE layer's capacity limits and drop policy with these routers.
#include "test_util.hpp"

#include <cdrmix/error.hpp>

#include <algorithm>
#include <cmath>

using cdrmix::BlockContext;
using cdrmix::ForwardContext;
using cdrmix::Json;
using cdrmix::RouteInput;
using cdrmix::RouterContext;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

// top_k is the MoE layer's decision, handed over in the context (never in the router's config).
std::shared_ptr<cdrmix::Router> make_router(const Json &cfg, int64_t C, int64_t E, int64_t k, int64_t layer = 0) {
    return cdrmix::Registry::global().create_router(cdrmix::Config(cfg, "test", "test"), RouterContext{C, E, k, layer});
}

RouteInput with_ids(const Tensor &ids, bool decoding = false) {
    RouteInput in;
    in.token_ids = ids;
    in.decoding = decoding;
    return in;
}

// Filled slots per expert.
Tensor loads(const Tensor &indices, int64_t E) {
    Tensor ids = indices.reshape({-1});
    return torch::bincount(ids.masked_select(ids >= 0), {}, E).to(torch::kFloat64);
}

double load_cv(const Tensor &indices, int64_t E) {
    Tensor l = loads(indices, E);
    return (l.std(/*unbiased=*/false) / l.mean()).item<double>();
}

// Gate weights that make experts 0 and 1 much more attractive for inputs along
// `direction`, so an unbalanced router sends most tokens there.
void skew_gate(cdrmix::Router &router, const Tensor &direction, uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    Tensor w = router.named_parameters()["gate.weight"];
    w.copy_(torch::randn_like(w) * 0.1);
    w.slice(0, 0, 2).add_(direction.to(w.dtype()).unsqueeze(0) * 0.5);
}

struct RouterCase {
    Json cfg;
    int64_t k;
};

const std::vector<RouterCase> kRouters = {
    {{{"type", "topk"}}, 2},     {{{"type", "switch"}}, 1}, {{{"type", "expert_choice"}}, 2},
    {{{"type", "aux_free"}}, 2}, {{{"type", "hash"}}, 2},   {{{"type", "sinkhorn"}}, 2},
};

} // namespace

TEST(RoutersContract, ShapesAndValidIndices) {
    const int64_t N = 24, C = 16, E = 8;
    torch::manual_seed(1);
    Tensor x = torch::randn({N, C});
    Tensor ids = torch::randint(0, 100, {N}, torch::kInt64);
    for (const auto &[cfg, top_k] : kRouters) {
        SCOPED_TRACE(cfg.dump());
        auto router = make_router(cfg, C, E, top_k);
        EXPECT_EQ(router->num_experts(), E);
        const int64_t k = router->top_k();
        EXPECT_EQ(k, top_k); // the context's value
        for (bool training : {true, false}) {
            router->train(training);
            auto out = router->route(x, with_ids(ids));
            const int64_t width = cfg["type"] == "expert_choice" ? E : k;
            ASSERT_EQ(out.indices.sizes(), (std::vector<int64_t>{N, width}));
            EXPECT_EQ(out.indices.scalar_type(), torch::kInt64);
            EXPECT_EQ(out.weights.sizes(), out.indices.sizes());
            EXPECT_EQ(out.probs.sizes(), (std::vector<int64_t>{N, E}));
            EXPECT_TRUE(torch::isfinite(out.weights).all().item<bool>());
            EXPECT_LT(max_abs_diff(out.probs.sum(-1), torch::ones({N})), 1e-5);
            EXPECT_FALSE(out.probs.requires_grad());
            EXPECT_TRUE(((out.indices >= -1) & (out.indices < E)).all().item<bool>());
            if (cfg["type"] != "expert_choice") EXPECT_TRUE((out.indices >= 0).all().item<bool>());
            // No expert twice for one token.
            Tensor per_token = torch::zeros({N, E + 1}, torch::kInt64).scatter_add_(1, out.indices + 1, torch::ones_like(out.indices));
            EXPECT_LE(per_token.slice(1, 1).max().item<int64_t>(), 1);
            for (const auto &l : out.losses) EXPECT_TRUE(std::isfinite(l.value.item<double>())) << l.name;
        }
    }
}

TEST(RoutersContract, ConfigErrorsAreOneLine) {
    auto message = [](const Json &cfg, int64_t k = 2) {
        try {
            make_router(cfg, 8, 4, k);
        } catch (const cdrmix::Error &e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    for (const auto &[cfg, k] : std::vector<RouterCase>{{{{"type", "switch"}}, 2},
                                                         {{{"type", "expert_choice"}, {"capacity_factor", 0.0}}, 2},
                                                         {{{"type", "aux_free"}, {"score_fn", "tanh"}}, 2},
                                                         {{{"type", "hash"}}, 5},
                                                         {{{"type", "topk"}}, 0},
                                                         {{{"type", "sinkhorn"}, {"max_iters", 0}}, 2},
                                                         {{{"type", "aux_free"}, {"bias_rate", 1.0}}, 2},
                                                         {{{"type", "topk"}, {"top_k", 2}}, 2}}) {
        const std::string m = message(cfg, k);
        EXPECT_NE(m.find("test"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        EXPECT_NE(m, "(no error)") << cfg.dump();
    }
    // top_k out of range names the router and the key.
    EXPECT_NE(message({{"type", "hash"}}, 5).find("router 'hash'"), std::string::npos);
    EXPECT_NE(message({{"type", "hash"}}, 5).find("top_k must be between 1 and num_experts (4)"), std::string::npos);
    // top_k is the layer's, never the router's key.
    EXPECT_NE(message({{"type", "topk"}, {"top_k", 2}}).find("unknown key 'top_k'"), std::string::npos);
    // The MoE layer hands over its top_k: switch accepts 1 and names top_k otherwise.
    EXPECT_EQ(message({{"type", "switch"}}, 1), "(no error)");
    const std::string two = message({{"type", "switch"}}, 2);
    EXPECT_NE(two.find("router 'switch'"), std::string::npos) << two;
    EXPECT_NE(two.find("top_k 2: set top_k = 1 or leave it unset"), std::string::npos) << two;
}

TEST(RoutersContract, DefaultTopKIsRegistered) {
    // What an MoE layer uses when its config sets no top_k.
    const auto &registry = cdrmix::Registry::global();
    EXPECT_EQ(registry.info(cdrmix::PluginKind::Router, "switch", "test").default_top_k, 1);
    EXPECT_EQ(registry.info(cdrmix::PluginKind::Router, "hash", "test").default_top_k, 1);
    EXPECT_EQ(registry.info(cdrmix::PluginKind::Router, "topk", "test").default_top_k, 2);
}

TEST(RoutersLoss, LoadBalanceEqualsAlphaAtPerfectBalance) {
    const int64_t N = 16, E = 4;
    torch::manual_seed(2);
    Tensor probs = torch::softmax(torch::randn({N, E}, torch::kFloat64), -1);
    // Each expert gets 4 of the 16 filled slots; the 16 empty (-1) slots are ignored.
    Tensor first = torch::arange(N, torch::kInt64).remainder(E).unsqueeze(1);
    Tensor indices = torch::cat({first, torch::full({N, 1}, -1, torch::kInt64)}, 1);
    EXPECT_NEAR(cdrmix::load_balance_loss(probs, indices, E, 0.01).item<double>(), 0.01, 1e-12);
    // Everything on expert 0, which also has all the probability: alpha * E.
    Tensor collapsed = torch::zeros({N, E}, torch::kFloat64);
    collapsed.select(1, 0).fill_(1.0);
    EXPECT_NEAR(cdrmix::load_balance_loss(collapsed, torch::zeros({N, 1}, torch::kInt64), E, 0.01).item<double>(), 0.04,
                1e-12);
    // No filled slot: zero, and still differentiable.
    Tensor p = probs.clone().requires_grad_(true);
    Tensor empty = cdrmix::load_balance_loss(p, torch::full({N, 2}, -1, torch::kInt64), E, 0.01);
    EXPECT_EQ(empty.item<double>(), 0.0);
    EXPECT_TRUE(empty.requires_grad());
    EXPECT_NEAR(cdrmix::router_z_loss(torch::zeros({N, E}), 0.001).item<double>(), 0.001 * std::pow(std::log(4.0), 2), 1e-9);
}

TEST(RoutersLoss, SwitchLossesAndWeights) {
    auto router = make_router({{"type", "switch"}}, 16, 8, 1);
    torch::manual_seed(3);
    Tensor x = torch::randn({32, 16});
    auto out = router->route(x, {});
    EXPECT_EQ(out.indices.sizes(), (std::vector<int64_t>{32, 1}));
    // The weight is the chosen probability itself, the row's maximum.
    EXPECT_LT(max_abs_diff(out.weights.squeeze(1), std::get<0>(out.probs.max(-1))), 1e-7);
    {
        torch::NoGradGuard no_grad;
        for (auto &p : router->parameters()) p.zero_();
    }
    auto uniform = router->route(x, {});
    ASSERT_EQ(uniform.losses.size(), 2u);
    EXPECT_EQ(uniform.losses[0].name, "load_balance");
    EXPECT_NEAR(uniform.losses[0].value.item<double>(), 0.01, 1e-7);
    EXPECT_NEAR(uniform.losses[1].value.item<double>(), 0.001 * std::pow(std::log(8.0), 2), 1e-7);
    router->eval();
    EXPECT_TRUE(router->route(x, {}).losses.empty());
}

TEST(RoutersAuxFree, BiasMovesLoadTowardBalance) {
    const int64_t C = 16, E = 8;
    // The default rate (1e-3) moves b by at most 0.05 in 50 steps; 1e-2 shows the effect in a fast test.
    auto router = make_router({{"type", "aux_free"}, {"bias_update_rate", 0.01}}, C, E, 2);
    ASSERT_EQ(router->parameters().size(), 1u); // the gate only: the bias is a buffer
    Tensor bias = router->named_buffers()["expert_bias"];
    ASSERT_TRUE(bias.defined());
    EXPECT_FALSE(bias.requires_grad());
    torch::manual_seed(4);
    Tensor direction = torch::randn({C}) / std::sqrt(double(C)) * 2.0;
    skew_gate(*router, direction, 5);
    auto batch = [&] { return torch::randn({64, C}) * 0.5 + direction; };
    std::vector<double> cv;
    for (int step = 0; step < 50; ++step) cv.push_back(load_cv(router->route(batch(), {}).indices, E));
    const double late = (cv[45] + cv[46] + cv[47] + cv[48] + cv[49]) / 5.0;
    EXPECT_GT(cv[0], 1.0); // experts 0 and 1 take almost everything at first
    EXPECT_LT(late, 0.5 * cv[0]) << "first " << cv[0] << ", last five " << late;
    // The favoured experts were pushed down, the neglected ones up.
    EXPECT_LT(bias[0].item<double>(), 0.0);
    EXPECT_LT(bias[1].item<double>(), 0.0);
    EXPECT_GT(bias.slice(0, 2).mean().item<double>(), 0.0);
    // Evaluation leaves the bias alone.
    router->eval();
    Tensor before = bias.clone();
    router->route(batch(), {});
    EXPECT_TRUE(torch::equal(before, bias));
}

TEST(RoutersAuxFree, WeightsUseUnbiasedScoresAndSeqLossIsAlphaWhenBalanced) {
    const int64_t C = 8, E = 4, N = 12;
    auto router = make_router({{"type", "aux_free"}, {"seq_aux_alpha", 1e-4}, {"seq_length", 4}}, C, E, 2);
    torch::manual_seed(6);
    Tensor x = torch::randn({N, C});
    router->eval();
    {
        torch::NoGradGuard no_grad;
        router->named_buffers()["expert_bias"].copy_(torch::tensor({5.0, 5.0, 0.0, 0.0}));
    }
    auto out = router->route(x, {});
    // The bias decides the choice (experts 0 and 1) but not the weights: those are
    // the unbiased sigmoid scores of the chosen experts, normalised.
    auto [sorted, order] = out.indices.sort(-1);
    EXPECT_TRUE((sorted == torch::tensor({0, 1}, torch::kInt64)).all().item<bool>());
    Tensor s = torch::sigmoid(x.matmul(router->named_parameters()["gate.weight"].t())).detach().slice(1, 0, 2);
    EXPECT_LT(max_abs_diff(out.weights.gather(1, order), s / s.sum(-1, true)), 1e-6);
    // With a zero gate every normalised score is 1/E, so the sequence loss is alpha exactly.
    router->train();
    {
        torch::NoGradGuard no_grad;
        for (auto &p : router->parameters()) p.zero_();
    }
    auto balanced = router->route(x, {});
    ASSERT_EQ(balanced.losses.size(), 1u);
    EXPECT_EQ(balanced.losses[0].name, "seq_aux");
    EXPECT_NEAR(balanced.losses[0].value.item<double>(), 1e-4, 1e-10);
}

TEST(RoutersHash, StableAcrossCallsAndPositionsAndParameterFree) {
    const int64_t C = 8, E = 8;
    auto router = make_router({{"type", "hash"}}, C, E, 2);
    EXPECT_TRUE(router->parameters().empty());
    EXPECT_TRUE(router->buffers().empty());
    torch::manual_seed(7);
    Tensor ids = torch::randint(0, 40, {64}, torch::kInt64);
    auto a = router->route(torch::randn({64, C}), with_ids(ids));
    Tensor perm = torch::randperm(64, torch::kInt64);
    auto b = router->route(torch::randn({64, C}), with_ids(ids.index_select(0, perm)));
    EXPECT_TRUE(torch::equal(a.indices.index_select(0, perm), b.indices));
    EXPECT_TRUE(a.losses.empty());
    EXPECT_LT(max_abs_diff(a.weights, torch::full({64, 2}, 0.5)), 1e-12);
    // Same id, same experts, wherever it sits.
    for (int64_t n = 1; n < 64; ++n)
        if (ids[n].item<int64_t>() == ids[0].item<int64_t>()) EXPECT_TRUE(torch::equal(a.indices[n], a.indices[0]));
    // Many distinct ids spread evenly; another seed routes differently.
    Tensor many = torch::arange(4000, torch::kInt64);
    auto spread = router->route(torch::zeros({4000, C}), with_ids(many));
    EXPECT_LT(load_cv(spread.indices, E), 0.1);
    auto reseeded = make_router({{"type", "hash"}, {"seed", 1}}, C, E, 2);
    EXPECT_FALSE(torch::equal(reseeded->route(torch::zeros({4000, C}), with_ids(many)).indices, spread.indices));
}

TEST(RoutersHash, MissingTokenIdsIsAnError) {
    auto router = make_router({{"type", "hash"}}, 8, 4, 1);
    try {
        router->route(torch::randn({3, 8}), {});
        FAIL() << "no error";
    } catch (const cdrmix::Error &e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("token ids"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
}

TEST(RoutersExpertChoice, EachExpertGetsExactlyItsQuota) {
    const int64_t N = 30, C = 16, E = 8;
    torch::manual_seed(8);
    Tensor x = torch::randn({N, C});
    auto router = make_router({{"type", "expert_choice"}}, C, E, 2);
    auto out = router->route(x, {});
    const int64_t quota = static_cast<int64_t>(std::ceil(1.0 * N * 2 / E)); // 8
    Tensor per_expert = (out.indices >= 0).sum(0);
    EXPECT_TRUE((per_expert == quota).all().item<bool>()) << per_expert;
    // Column e holds only e or -1; weights are the softmax probabilities where chosen, 0 elsewhere.
    Tensor expert_ids = torch::arange(E, torch::kInt64).expand({N, E});
    EXPECT_TRUE(((out.indices == expert_ids) | (out.indices == -1)).all().item<bool>());
    Tensor chosen = out.indices >= 0;
    EXPECT_LT(max_abs_diff(out.weights.detach(), out.probs * chosen.to(out.probs.dtype())), 1e-7);
    // Each expert took the tokens it scores highest.
    for (int64_t e = 0; e < E; ++e) {
        Tensor col = out.probs.select(1, e);
        EXPECT_GE(col.masked_select(chosen.select(1, e)).min().item<double>(),
                  col.masked_select(~chosen.select(1, e)).max().item<double>());
    }
    // The quota is capped at N.
    auto all = make_router({{"type", "expert_choice"}, {"capacity_factor", 10.0}}, C, E, 2);
    EXPECT_TRUE((all->route(x, {}).indices >= 0).all().item<bool>());
}

TEST(RoutersSinkhorn, MoreBalancedThanPlainTopK) {
    const int64_t N = 256, C = 16, E = 8;
    auto sinkhorn = make_router({{"type", "sinkhorn"}}, C, E, 2);
    auto topk = make_router({{"type", "topk"}}, C, E, 2);
    torch::manual_seed(9);
    Tensor direction = torch::randn({C}) / std::sqrt(double(C)) * 2.0;
    skew_gate(*sinkhorn, direction, 10);
    {
        torch::NoGradGuard no_grad;
        topk->named_parameters()["gate.weight"].copy_(sinkhorn->named_parameters()["gate.weight"]);
    }
    Tensor x = torch::randn({N, C}) * 0.5 + direction;
    auto balanced = sinkhorn->route(x, {});
    auto plain = topk->route(x, {});
    const double cv_sinkhorn = load_cv(balanced.indices, E), cv_topk = load_cv(plain.indices, E);
    EXPECT_GT(cv_topk, 1.0);
    EXPECT_LT(cv_sinkhorn, 0.5 * cv_topk) << "sinkhorn " << cv_sinkhorn << ", top-k " << cv_topk;
    // Gates: the renormalised softmax at the chosen experts.
    Tensor p = balanced.probs.gather(1, balanced.indices);
    EXPECT_LT(max_abs_diff(balanced.weights, p / p.sum(-1, true)), 1e-6);
    // Decoding is plain top-k: the same choice as the top-k router.
    auto decoding = sinkhorn->route(x, with_ids(Tensor(), true));
    EXPECT_TRUE(torch::equal(decoding.indices, plain.indices));
}

TEST(RoutersDecoding, FallbacksGiveKExpertsPerToken) {
    const int64_t C = 16, E = 8;
    torch::manual_seed(11);
    for (const auto &[cfg, top_k] : kRouters) {
        SCOPED_TRACE(cfg.dump());
        auto router = make_router(cfg, C, E, top_k);
        router->eval();
        const int64_t k = router->top_k();
        for (int64_t N : {1, 5}) {
            auto out = router->route(torch::randn({N, C}), with_ids(torch::randint(0, 50, {N}, torch::kInt64), true));
            ASSERT_EQ(out.indices.sizes(), (std::vector<int64_t>{N, k}));
            EXPECT_TRUE(((out.indices >= 0) & (out.indices < E)).all().item<bool>());
            if (k > 1) EXPECT_TRUE((out.indices.select(1, 0) != out.indices.select(1, 1)).all().item<bool>());
        }
    }
}

TEST(RoutersGradients, MatchFiniteDifferences) {
    // Tiny float64 routers; routing is piecewise constant, so small steps keep every choice.
    for (const auto &[cfg, k] : std::vector<RouterCase>{
             {{{"type", "switch"}}, 1},
             {{{"type", "sinkhorn"}}, 2},
             {{{"type", "expert_choice"}}, 2},
             {{{"type", "aux_free"}, {"seq_aux_alpha", 0.01}, {"bias_update_rate", 0.0}}, 2}}) {
        SCOPED_TRACE(cfg.dump());
        auto router = make_router(cfg, 4, 3, k);
        router->to(torch::kFloat64);
        cdrmix::test::perturb(*router, 0.5, 12);
        torch::manual_seed(13);
        Tensor x = torch::randn({6, 4}, torch::kFloat64).requires_grad_(true);
        Tensor proj;
        auto loss = [&] {
            auto out = router->route(x, {});
            if (!proj.defined()) proj = torch::randn(out.weights.sizes(), torch::kFloat64);
            Tensor l = (out.weights * proj).sum();
            for (const auto &a : out.losses) l = l + a.value;
            return l;
        };
        Tensor gate = router->named_parameters()["gate.weight"];
        cdrmix::test::expect_gradient_matches(gate, loss, 6, 1e-7, 1e-5);
        EXPECT_GT(gate.grad().abs().sum().item<double>(), 0.0);
        cdrmix::test::expect_gradient_matches(x, loss, 4, 1e-7, 1e-5);
    }
}

namespace {

Json moe_with(const Json &router, int64_t top_k, double capacity_factor, const std::string &policy) {
    return {{"type", "moe"},
            {"num_experts", 4},
            {"top_k", top_k},
            {"capacity_factor", capacity_factor},
            {"drop_policy", policy},
            {"router", router},
            {"expert", {{"type", "rwkv_channel_mix"}, {"expansion", 2}}}};
}

std::shared_ptr<cdrmix::Block> make_moe(const Json &cfg, int64_t C, uint64_t seed) {
    auto b = cdrmix::test::make_block(cfg, BlockContext{C, 1, 3});
    cdrmix::test::perturb(*b, 0.1, seed);
    return b;
}

// A context that asks the MoE layer to record its routing, and the statistics of what it recorded.
ForwardContext recording() {
    ForwardContext ctx;
    ctx.record_routing = true;
    return ctx;
}
cdrmix::RouterStats stats_of(const ForwardContext &ctx) {
    auto stats = cdrmix::compute_router_stats(ctx.routing);
    EXPECT_EQ(stats.size(), 1u);
    return stats.empty() ? cdrmix::RouterStats{} : stats[0];
}

} // namespace

TEST(RoutersMoECapacity, CapacityIsCeilAndNeverExceeded) {
    const int64_t C = 16;
    // Every token has the same id, so hash routing sends all ten to the same two
    // experts: capacity ceil(0.7 * 10 * 2 / 4) = 4 binds on both.
    auto moe = make_moe(moe_with({{"type", "hash"}}, 2, 0.7, "position"), C, 14);
    ForwardContext ctx = recording();
    ctx.token_ids = torch::full({1, 10}, 7, torch::kInt64);
    moe->forward(torch::randn({1, 10, C}), nullptr, ctx);
    std::vector<int64_t> load = stats_of(ctx).tokens_per_expert;
    std::sort(load.begin(), load.end());
    EXPECT_EQ(load, (std::vector<int64_t>{0, 0, 4, 4}));
    // A learned router on random tokens, both policies: no expert above ceil(phi N k / E).
    for (const std::string policy : {"probability", "position"}) {
        for (double phi : {0.5, 1.0, 1.25}) {
            auto m = make_moe(moe_with({{"type", "topk"}}, 2, phi, policy), C, 15);
            torch::manual_seed(16);
            ForwardContext c = recording();
            m->forward(torch::randn({3, 7, C}) + torch::randn({C}), nullptr, c);
            const auto capacity = static_cast<int64_t>(std::ceil(phi * 21 * 2 / 4));
            for (int64_t n : stats_of(c).tokens_per_expert) EXPECT_LE(n, capacity) << policy << " " << phi;
        }
    }
}

TEST(RoutersMoECapacity, PositionPolicyDropsLaterTokensAndDroppedTokensPassThrough) {
    const int64_t C = 16, T = 8;
    // One expert wanted by all 8 tokens, capacity ceil(1.0 * 8 * 1 / 4) = 2.
    auto moe = make_moe(moe_with({{"type", "hash"}}, 1, 1.0, "position"), C, 17);
    torch::manual_seed(18);
    Tensor x = torch::randn({1, T, C});
    ForwardContext ctx = recording();
    ctx.token_ids = torch::full({1, T}, 3, torch::kInt64);
    Tensor y = moe->forward(x, nullptr, ctx);
    Tensor per_token = y[0].abs().sum(-1);
    EXPECT_GT(per_token[0].item<double>(), 0.0);
    EXPECT_GT(per_token[1].item<double>(), 0.0);
    // Tokens 2..7 lost their only slot: the layer adds nothing, so the residual carries them unchanged.
    EXPECT_EQ(per_token.slice(0, 2).max().item<double>(), 0.0);
    EXPECT_EQ(stats_of(ctx).dropped_tokens, T - 2);
    // Dropless: everything is routed.
    auto dropless = make_moe(moe_with({{"type", "hash"}}, 1, 0.0, "position"), C, 17);
    ForwardContext c2 = recording();
    c2.token_ids = ctx.token_ids;
    EXPECT_GT(dropless->forward(x, nullptr, c2)[0].abs().sum(-1).min().item<double>(), 0.0);
    EXPECT_EQ(stats_of(c2).dropped_tokens, 0);
}

TEST(RoutersMoECapacity, ProbabilityPolicyDropsLowestWeightsFirst) {
    const int64_t C = 16, N = 24, E = 4;
    // Without token shift the router sees x itself, so its decision can be replayed.
    Json cfg = moe_with({{"type", "topk"}, {"normalize", false}}, 1, 0.5, "probability");
    cfg["token_shift"] = false;
    auto moe = make_moe(cfg, C, 22);
    torch::manual_seed(23);
    Tensor x = torch::randn({1, N, C}) + torch::randn({C});
    ForwardContext ctx = recording();
    Tensor y = moe->forward(x, nullptr, ctx);
    auto router = make_router({{"type", "topk"}, {"normalize", false}}, C, E, 1);
    {
        torch::NoGradGuard no_grad;
        router->named_parameters()["gate.weight"].copy_(moe->named_parameters()["router.gate.weight"]);
    }
    auto route = router->route(x.view({N, C}), {});
    Tensor kept = y[0].abs().sum(-1) > 0;
    const int64_t capacity = 3; // ceil(0.5 * 24 * 1 / 4)
    EXPECT_GT(stats_of(ctx).dropped_tokens, 0);
    for (int64_t e = 0; e < E; ++e) {
        Tensor mine = route.indices.select(1, 0) == e;
        Tensor w = route.weights.select(1, 0).detach();
        EXPECT_EQ((mine & kept).sum().item<int64_t>(), std::min<int64_t>(capacity, mine.sum().item<int64_t>()));
        if ((mine & ~kept).any().item<bool>())
            EXPECT_GE(w.masked_select(mine & kept).min().item<double>(), w.masked_select(mine & ~kept).max().item<double>());
    }
}

TEST(RoutersMoECapacity, ExpertChoiceAndHashRunForwardBackward) {
    const int64_t C = 16;
    torch::manual_seed(19);
    Tensor x = torch::randn({2, 6, C}, torch::kFloat64);
    {
        auto moe = make_moe(moe_with({{"type", "expert_choice"}}, 2, 0.0, "probability"), C, 20);
        moe->to(torch::kFloat64);
        ForwardContext ctx = recording();
        Tensor y = moe->forward(x, nullptr, ctx);
        EXPECT_EQ(y.sizes(), x.sizes());
        EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
        y.square().sum().backward();
        // Every expert took ceil(12 * 2 / 4) = 6 tokens.
        EXPECT_EQ(stats_of(ctx).tokens_per_expert, (std::vector<int64_t>{6, 6, 6, 6}));
        for (const auto &p : moe->named_parameters()) {
            ASSERT_TRUE(p.value().grad().defined()) << p.key();
            EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
        }
        EXPECT_GT(moe->named_parameters()["router.gate.weight"].grad().abs().sum().item<double>(), 0.0);
    }
    {
        auto moe = make_moe(moe_with({{"type", "hash"}}, 2, 0.0, "probability"), C, 21);
        moe->to(torch::kFloat64);
        ForwardContext ctx = recording();
        ctx.token_ids = torch::randint(0, 30, {2, 6}, torch::kInt64);
        Tensor y = moe->forward(x, nullptr, ctx);
        y.square().sum().backward();
        EXPECT_TRUE(ctx.aux_losses.empty());
        ASSERT_EQ(stats_of(ctx).dead_experts, 0); // so every expert has a gradient
        for (const auto &p : moe->named_parameters()) {
            EXPECT_EQ(p.key().rfind("router.", 0), std::string::npos) << p.key(); // no router parameters
            ASSERT_TRUE(p.value().grad().defined()) << p.key();
        }
        // Without token ids the layer reports the router's error.
        ForwardContext no_ids;
        EXPECT_THROW(moe->forward(x, nullptr, no_ids), cdrmix::Error);
    }
}
