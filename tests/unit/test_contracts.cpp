// Contract suites instantiated over every registered block and router, so a new
// plugin is tested by being registered: shapes, determinism under a seed,
// streaming equal to parallel (float64), finite-difference gradients, and for
// routers well-formed decisions and statistics. Each plugin runs with its
// defaults ({type: name}; the `lua` ones with the experiments' modules);
// plugin-specific properties live in their own suites.
#include "test_util.hpp"

using cdrmix::BlockContext;
using cdrmix::ForwardContext;
using cdrmix::Json;
using cdrmix::PluginKind;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

std::vector<std::string> registered(PluginKind kind) {
    std::vector<std::string> names;
    for (const auto &f : cdrmix::Registry::global().list())
        if (f.kind == kind) names.push_back(f.name);
    return names;
}

constexpr int64_t kWidth = 64;

// What each plugin is built from: {type: name}, except the `lua` block and
// router, which need a module file (the experiments' retention block and top-k router).
Json contract_config(PluginKind kind, const std::string &name) {
    if (name != "lua") return Json{{"type", name}};
    const std::string modules = std::string(CDRMIX_SOURCE_DIR) + "/experiments/modules/";
    return Json{{"type", name},
                {"file", modules + (kind == PluginKind::Block ? "retention_block.lua" : "topk_router.lua")}};
}

std::shared_ptr<cdrmix::Block> build_block(const std::string &name, torch::ScalarType dtype, uint64_t seed) {
    torch::manual_seed(seed);
    auto b = cdrmix::test::make_block(contract_config(PluginKind::Block, name), BlockContext{kWidth, 1, 3});
    b->to(dtype);
    cdrmix::test::perturb(*b, 0.05, seed + 1);
    return b;
}

// Runs a block with the extras some blocks read from the context (RWKV-7's v_first, token ids).
Tensor run(cdrmix::Block &b, const Tensor &x, cdrmix::BlockState *state, const Tensor &v_first, const Tensor &tokens) {
    ForwardContext ctx;
    ctx.v_first = v_first;
    ctx.token_ids = tokens;
    return b.forward(x, state, ctx);
}

class BlockContract : public ::testing::TestWithParam<std::string> {};

std::string param_name(const ::testing::TestParamInfo<std::string> &info) { return info.param; }

} // namespace

TEST_P(BlockContract, KeepsShapeAndIsFinite) {
    auto b = build_block(GetParam(), torch::kFloat32, 1);
    Tensor x = torch::randn({2, 7, kWidth});
    Tensor y = run(*b, x, nullptr, torch::randn({2, 7, kWidth}), torch::randint(0, 50, {2, 7}));
    EXPECT_EQ(y.sizes(), x.sizes());
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
}

TEST_P(BlockContract, DeterministicUnderASeed) {
    auto a = build_block(GetParam(), torch::kFloat32, 7), b = build_block(GetParam(), torch::kFloat32, 7);
    auto pa = a->named_parameters(), pb = b->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (const auto &p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
    torch::manual_seed(3);
    Tensor x = torch::randn({1, 5, kWidth}), vf = torch::randn({1, 5, kWidth});
    Tensor tokens = torch::randint(0, 50, {1, 5});
    a->eval();
    b->eval();
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(run(*a, x, nullptr, vf, tokens), run(*b, x, nullptr, vf, tokens)));
}

TEST_P(BlockContract, StreamingEqualsParallel) {
    auto b = build_block(GetParam(), torch::kFloat64, 11);
    b->eval();
    torch::NoGradGuard no_grad;
    torch::manual_seed(4);
    const int64_t T = 9;
    Tensor x = torch::randn({2, T, kWidth}, torch::kFloat64), vf = torch::randn({2, T, kWidth}, torch::kFloat64);
    Tensor tokens = torch::randint(0, 50, {2, T});
    Tensor whole = run(*b, x, nullptr, vf, tokens);
    cdrmix::BlockState state;
    std::vector<Tensor> parts{run(*b, x.slice(1, 0, 4), &state, vf.slice(1, 0, 4), tokens.slice(1, 0, 4))};
    for (int64_t t = 4; t < T; ++t)
        parts.push_back(run(*b, x.slice(1, t, t + 1), &state, vf.slice(1, t, t + 1), tokens.slice(1, t, t + 1)));
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), whole), 1e-5);
}

TEST_P(BlockContract, GradientsMatchFiniteDifferences) {
    auto b = build_block(GetParam(), torch::kFloat64, 21);
    torch::manual_seed(5);
    Tensor x = torch::randn({1, 3, kWidth}, torch::kFloat64).requires_grad_(true);
    Tensor vf = torch::randn({1, 3, kWidth}, torch::kFloat64), proj = torch::randn({1, 3, kWidth}, torch::kFloat64);
    Tensor tokens = torch::randint(0, 50, {1, 3});
    auto loss = [&] {
        ForwardContext ctx;
        ctx.v_first = vf;
        ctx.token_ids = tokens;
        Tensor l = (b->forward(x, nullptr, ctx) * proj).sum();
        for (const auto &a : ctx.aux_losses) l = l + a.value;
        return l;
    };
    cdrmix::test::expect_gradient_matches(x, loss, 4, 1e-6, 1e-5);
    for (const auto &p : b->named_parameters()) {
        SCOPED_TRACE(p.key());
        cdrmix::test::expect_gradient_matches(p.value(), loss, 2, 1e-6, 1e-5);
    }
}

// train.weights_dtype = "bfloat16": the block's parameters in bf16 (buffers kept,
// as train/master_weights does), bf16 inputs. Forward, backward and a streamed
// step (generation) run, the output stays within bf16's precision of float32's, and the
// gradients arrive in bf16 and finite.
TEST_P(BlockContract, RunsWithBf16Weights) {
    auto ref = build_block(GetParam(), torch::kFloat32, 31), b = build_block(GetParam(), torch::kFloat32, 31);
    {
        torch::NoGradGuard no_grad;
        for (auto &p : b->parameters())
            if (p.is_floating_point()) p.set_data(p.to(torch::kBFloat16));
    }
    torch::manual_seed(6);
    Tensor x = torch::randn({2, 7, kWidth}), vf = torch::randn({2, 7, kWidth}), proj = torch::randn({2, 7, kWidth});
    Tensor tokens = torch::randint(0, 50, {2, 7});
    ref->eval();
    b->eval();
    Tensor expected;
    {
        torch::NoGradGuard no_grad;
        expected = run(*ref, x, nullptr, vf, tokens);
    }
    ForwardContext ctx; // eval mode with gradients: no jitter or dropout, so float32's output is comparable
    ctx.v_first = vf.to(torch::kBFloat16);
    ctx.token_ids = tokens;
    Tensor y = b->forward(x.to(torch::kBFloat16), nullptr, ctx);
    ASSERT_EQ(y.sizes(), x.sizes());
    ASSERT_TRUE(torch::isfinite(y).all().item<bool>());
    EXPECT_LT(max_abs_diff(y.to(torch::kFloat32), expected), 0.05 * (1 + expected.abs().max().item<double>()));
    Tensor l = (y.to(torch::kFloat32) * proj).sum();
    for (const auto &a : ctx.aux_losses) l = l + a.value.to(torch::kFloat32);
    l.backward();
    int with_grad = 0;
    for (const auto &p : b->named_parameters()) {
        if (!p.value().grad().defined()) continue;
        ++with_grad;
        EXPECT_EQ(p.value().grad().scalar_type(), torch::kBFloat16) << p.key();
        EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    }
    if (!b->parameters().empty()) EXPECT_GT(with_grad, 0);
    torch::NoGradGuard no_grad;
    cdrmix::BlockState state;
    Tensor step = run(*b, x.slice(1, 0, 1).to(torch::kBFloat16), &state, vf.slice(1, 0, 1).to(torch::kBFloat16),
                      tokens.slice(1, 0, 1));
    EXPECT_TRUE(torch::isfinite(step).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(Registered, BlockContract, ::testing::ValuesIn(registered(PluginKind::Block)), param_name);

namespace {

class RouterContract : public ::testing::TestWithParam<std::string> {};

constexpr int64_t kExperts = 4;

// Each router with the top_k an MoE layer gives it when its config sets none.
std::shared_ptr<cdrmix::Router> build_router(const std::string &name, uint64_t seed) {
    torch::manual_seed(seed);
    const auto &registry = cdrmix::Registry::global();
    const int64_t k = registry.info(PluginKind::Router, name, "contract").default_top_k;
    return registry.create_router(cdrmix::Config(contract_config(PluginKind::Router, name), "contract", ""),
                                  cdrmix::RouterContext{16, kExperts, k, 0});
}

} // namespace

TEST_P(RouterContract, DecisionsAreWellFormed) {
    auto r = build_router(GetParam(), 1);
    r->train();
    torch::manual_seed(2);
    Tensor x = torch::randn({32, 16});
    cdrmix::RouteInput in;
    in.token_ids = torch::randint(0, 100, {32});
    auto out = r->route(x, in);
    ASSERT_EQ(out.indices.dim(), 2);
    ASSERT_EQ(out.indices.size(0), 32);
    EXPECT_EQ(out.weights.sizes(), out.indices.sizes());
    EXPECT_EQ(out.probs.sizes(), (std::vector<int64_t>{32, kExperts}));
    EXPECT_TRUE((out.indices >= -1).all().item<bool>() && (out.indices < kExperts).all().item<bool>());
    EXPECT_TRUE(torch::isfinite(out.weights).all().item<bool>());
    for (const auto &l : out.losses) EXPECT_TRUE(std::isfinite(l.value.item<double>())) << l.name;
    cdrmix::RoutingRecord rec{0, kExperts, out.indices, out.probs, {}};
    const auto all = cdrmix::compute_router_stats({rec});
    ASSERT_EQ(all.size(), 1u);
    const auto &stats = all[0];
    int64_t routed = 0;
    for (auto n : stats.tokens_per_expert) routed += n;
    EXPECT_EQ(routed, (out.indices >= 0).sum().item<int64_t>());
    EXPECT_GE(stats.token_entropy, 0.0);
    EXPECT_LE(stats.load_entropy, 1.0 + 1e-9);
}

TEST_P(RouterContract, DecodingGivesEveryTokenAnExpert) {
    auto r = build_router(GetParam(), 3);
    r->eval();
    torch::NoGradGuard no_grad;
    cdrmix::RouteInput in;
    in.token_ids = torch::randint(0, 100, {2});
    in.decoding = true;
    auto out = r->route(torch::randn({2, 16}), in);
    EXPECT_TRUE(((out.indices >= 0).sum(1) >= 1).all().item<bool>());
}

TEST_P(RouterContract, DeterministicUnderASeed) {
    auto a = build_router(GetParam(), 5), b = build_router(GetParam(), 5);
    a->eval();
    b->eval();
    torch::NoGradGuard no_grad;
    Tensor x = torch::randn({16, 16});
    cdrmix::RouteInput in;
    in.token_ids = torch::randint(0, 100, {16});
    auto oa = a->route(x, in), ob = b->route(x, in);
    EXPECT_TRUE(torch::equal(oa.indices, ob.indices));
    EXPECT_TRUE(torch::equal(oa.weights, ob.weights));
}

TEST_P(RouterContract, WeightsCarryGradientsToParameters) {
    auto r = build_router(GetParam(), 7);
    if (r->parameters().empty()) GTEST_SKIP() << GetParam() << " has no parameters";
    r->train();
    torch::manual_seed(8);
    cdrmix::RouteInput in;
    in.token_ids = torch::randint(0, 100, {24});
    auto out = r->route(torch::randn({24, 16}), in);
    Tensor filled = (out.indices >= 0).to(out.weights.dtype());
    (out.weights * filled * torch::randn_like(out.weights)).sum().backward();
    double total = 0;
    for (const auto &p : r->parameters())
        if (p.grad().defined()) total += p.grad().abs().sum().item<double>();
    EXPECT_GT(total, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Registered, RouterContract, ::testing::ValuesIn(registered(PluginKind::Router)), param_name);
