// Block and router plugins, created through the registry as the host does:
// shapes, streaming (token by token with state) equal to parallel in float64,
// finite-difference gradients, and MoE sparse dispatch equal to the dense reference.
#include "test_util.hpp"

#include <cdrmix/error.hpp>

using cdrmix::BlockContext;
using cdrmix::ForwardContext;
using cdrmix::Json;
using cdrmix::test::make_block;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

const Json kTimeMix = {{"type", "rwkv7_time_mix"}, {"head_size", 8}};
const Json kChannelMix = {{"type", "rwkv_channel_mix"}, {"expansion", 2}};
const Json kMoE = {{"type", "moe"},
                   {"num_experts", 4},
                   {"top_k", 2},
                   {"router", {{"type", "topk"}}},
                   {"expert", {{"type", "rwkv_channel_mix"}, {"expansion", 2}}}};

std::shared_ptr<cdrmix::Block> double_block(const Json &cfg, int64_t C, int64_t layer, uint64_t seed) {
    auto b = make_block(cfg, BlockContext{C, layer, 3});
    b->to(torch::kFloat64);
    cdrmix::test::perturb(*b, 0.1, seed);
    return b;
}

// Runs x [B,T,C] whole, then in pieces [0,a) and token by token with the state
// carried; returns the largest difference. v_first (layers > 0) is sliced alike.
double streaming_gap(cdrmix::Block &block, const Tensor &x, const Tensor &v_first, int64_t a) {
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    ctx.v_first = v_first;
    Tensor whole = block.forward(x, nullptr, ctx);
    cdrmix::BlockState state;
    std::vector<Tensor> parts;
    auto run = [&](int64_t s, int64_t e) {
        ForwardContext c;
        if (v_first.defined()) c.v_first = v_first.slice(1, s, e);
        parts.push_back(block.forward(x.slice(1, s, e), &state, c));
    };
    run(0, a);
    for (int64_t t = a; t < x.size(1); ++t) run(t, t + 1);
    return max_abs_diff(torch::cat(parts, 1), whole);
}

} // namespace

TEST(Blocks, ShapesArePreserved) {
    torch::manual_seed(0);
    Tensor x = torch::randn({2, 5, 16});
    for (const Json &cfg : {kTimeMix, kChannelMix, kMoE}) {
        auto b = make_block(cfg, BlockContext{16, 0, 2});
        ForwardContext ctx;
        EXPECT_EQ(b->forward(x, nullptr, ctx).sizes(), x.sizes()) << cfg.dump();
    }
}

TEST(Blocks, TimeMixStreamingEqualsParallel) {
    torch::manual_seed(1);
    Tensor x = torch::randn({2, 21, 16}, torch::kFloat64);
    auto first = double_block(kTimeMix, 16, 0, 11);
    EXPECT_LT(streaming_gap(*first, x, Tensor(), 13), 1e-5);
    auto later = double_block(kTimeMix, 16, 2, 12); // uses the value residual
    EXPECT_LT(streaming_gap(*later, x, torch::randn({2, 21, 16}, torch::kFloat64), 9), 1e-5);
}

TEST(Blocks, ChannelMixStreamingEqualsParallel) {
    torch::manual_seed(2);
    auto b = double_block(kChannelMix, 16, 1, 13);
    EXPECT_LT(streaming_gap(*b, torch::randn({2, 9, 16}, torch::kFloat64), Tensor(), 4), 1e-5);
}

TEST(Blocks, MoEStreamingEqualsParallel) {
    torch::manual_seed(3);
    auto b = double_block(kMoE, 16, 1, 14);
    b->eval();
    EXPECT_LT(streaming_gap(*b, torch::randn({2, 9, 16}, torch::kFloat64), Tensor(), 4), 1e-5);
}

TEST(Blocks, TimeMixGradientsMatchFiniteDifferences) {
    torch::manual_seed(4);
    auto b = double_block(kTimeMix, 8, 1, 15);
    Tensor x = torch::randn({1, 4, 8}, torch::kFloat64).requires_grad_(true);
    Tensor vf = torch::randn({1, 4, 8}, torch::kFloat64);
    Tensor proj = torch::randn({1, 4, 8}, torch::kFloat64);
    auto loss = [&] {
        ForwardContext ctx;
        ctx.v_first = vf;
        return (b->forward(x, nullptr, ctx) * proj).sum();
    };
    cdrmix::test::expect_gradient_matches(x, loss, 8, 1e-6, 1e-5);
    for (const auto &p : b->named_parameters()) {
        SCOPED_TRACE(p.key());
        cdrmix::test::expect_gradient_matches(p.value(), loss, 3, 1e-6, 1e-5);
    }
}

TEST(Blocks, MoEGradientsMatchFiniteDifferences) {
    torch::manual_seed(5);
    auto b = double_block(kMoE, 8, 1, 16);
    Tensor x = torch::randn({1, 6, 8}, torch::kFloat64).requires_grad_(true);
    Tensor proj = torch::randn({1, 6, 8}, torch::kFloat64);
    auto loss = [&] {
        ForwardContext ctx;
        Tensor l = (b->forward(x, nullptr, ctx) * proj).sum();
        for (const auto &a : ctx.aux_losses) l = l + a.value;
        return l;
    };
    // Routing is piecewise constant: small steps keep every token's choice fixed.
    cdrmix::test::expect_gradient_matches(x, loss, 6, 1e-7, 1e-5);
    for (const auto &p : b->named_parameters()) {
        SCOPED_TRACE(p.key());
        cdrmix::test::expect_gradient_matches(p.value(), loss, 3, 1e-7, 1e-5);
    }
}

TEST(Blocks, MoESparseDispatchEqualsDenseReference) {
    Json dense_cfg = kMoE;
    dense_cfg["dispatch"] = "dense";
    auto sparse = double_block(kMoE, 16, 1, 17);
    auto dense = make_block(dense_cfg, BlockContext{16, 1, 3});
    dense->to(torch::kFloat64);
    {
        torch::NoGradGuard no_grad;
        auto src = sparse->named_parameters();
        for (auto &p : dense->named_parameters()) p.value().copy_(src[p.key()]);
    }
    torch::manual_seed(6);
    Tensor x = torch::randn({3, 11, 16}, torch::kFloat64);
    Tensor proj = torch::randn({3, 11, 16}, torch::kFloat64);
    ForwardContext c1, c2;
    c1.record_routing = true;
    Tensor ys = sparse->forward(x, nullptr, c1), yd = dense->forward(x, nullptr, c2);
    EXPECT_LT(max_abs_diff(ys, yd), 1e-12);
    (ys * proj).sum().backward();
    (yd * proj).sum().backward();
    auto dense_params = dense->named_parameters();
    for (const auto &p : sparse->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_LT(max_abs_diff(p.value().grad(), dense_params[p.key()].grad()), 1e-12) << p.key();
    }
    // Statistics: every token is routed to k experts.
    const auto stats = cdrmix::compute_router_stats(c1.routing);
    ASSERT_EQ(stats.size(), 1u);
    int64_t routed = 0;
    for (auto n : stats[0].tokens_per_expert) routed += n;
    EXPECT_EQ(routed, 3 * 11 * 2);
}

TEST(Router, TopKWeightsAndLoadBalanceLoss) {
    auto router = cdrmix::Registry::global().create_router(
        cdrmix::Config(Json{{"type", "topk"}, {"load_balance_alpha", 0.01}, {"z_loss", 0.001}}, "t", ""),
        cdrmix::RouterContext{16, 8, 2, 0});
    torch::manual_seed(7);
    Tensor x = torch::randn({64, 16});
    auto out = router->route(x, {});
    EXPECT_EQ(out.indices.sizes(), (std::vector<int64_t>{64, 2}));
    EXPECT_LT(max_abs_diff(out.weights.sum(-1), torch::ones({64})), 1e-6);
    EXPECT_TRUE((out.indices.select(1, 0) != out.indices.select(1, 1)).all().item<bool>());
    // With a zero gate every expert has probability 1/E, so load_balance = alpha * E * sum_i f_i / E = alpha.
    {
        torch::NoGradGuard no_grad;
        for (auto &p : router->parameters()) p.zero_();
    }
    auto uniform = router->route(x, {});
    ASSERT_EQ(uniform.losses.size(), 2u);
    EXPECT_NEAR(uniform.losses[0].value.item<double>(), 0.01, 1e-7);
    EXPECT_NEAR(uniform.losses[1].value.item<double>(), 0.001 * std::pow(std::log(8.0), 2), 1e-7); // z-loss
}

TEST(Router, StatisticsFromARoutingDecision) {
    cdrmix::RoutingRecord rec;
    rec.layer = 3;
    rec.num_experts = 4;
    rec.indices = torch::tensor({0, 0, 0, 1}, torch::kInt64).reshape({4, 1});
    rec.probs = torch::tensor({1.0, 0.0, 0.0, 0.0}).repeat({4, 1});
    const auto all = cdrmix::compute_router_stats({rec});
    ASSERT_EQ(all.size(), 1u);
    const auto &s = all[0];
    EXPECT_EQ(s.layer, 3);
    EXPECT_EQ(s.tokens_per_expert, (std::vector<int64_t>{3, 1, 0, 0}));
    EXPECT_EQ(s.dead_experts, 2);
    EXPECT_NEAR(s.token_entropy, 0.0, 1e-6);
    const double h = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)) / std::log(4.0);
    EXPECT_NEAR(s.load_entropy, h, 1e-9);
    EXPECT_NEAR(s.load_cv, std::sqrt((4 + 0 + 1 + 1) / 4.0), 1e-9); // mean 1: deviations 2, 0, -1, -1
}

TEST(Blocks, ConfigErrorsNameKeyAndPlugin) {
    auto message = [](const Json &cfg) {
        try {
            make_block(cfg, BlockContext{64, 0, 1});
        } catch (const cdrmix::Error &e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_EQ(message({{"type", "rwkv7_time_mix"}, {"head_sise", 8}}),
              "block 'rwkv7_time_mix' (test): unknown key 'head_sise'; did you mean 'head_size'?");
    EXPECT_NE(message({{"type", "rwkv7_time_mix"}, {"head_size", "big"}}).find("key 'head_size' must be an integer"),
              std::string::npos);
    EXPECT_NE(message({{"type", "rwkv7_time_mix"}, {"head_size", 5}}).find("multiple of head_size"), std::string::npos);
    EXPECT_NE(message({{"type", "moe"}, {"expert", {{"type", "rwkv7_time_mix"}}}}).find("not token-wise"),
              std::string::npos);
    EXPECT_NE(message({{"type", "rwkv99"}}).find("unknown block 'rwkv99'"), std::string::npos);
}
