// RWKV-6 blocks created through the registry: the rwkv6_time_mix plugin
// (defaults, reference initialisation, streaming equal to parallel in float64,
// finite-difference gradients of the input and every parameter, config errors)
// and rwkv_channel_mix's RWKV-4..6 receptance gate.
#include "test_util.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/token_shift.hpp>

#include <cmath>

using cdrmix::BlockContext;
using cdrmix::ForwardContext;
using cdrmix::Json;
using cdrmix::test::make_block;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

const Json kTimeMix = {{"type", "rwkv6_time_mix"}, {"head_size", 8}, {"mix_lora", 4}, {"decay_lora", 6}};
const Json kGatedChannelMix = {{"type", "rwkv_channel_mix"}, {"expansion", 2}, {"receptance", true}};

std::shared_ptr<cdrmix::Block> double_block(const Json &cfg, int64_t C, int64_t layer, uint64_t seed) {
    auto b = make_block(cfg, BlockContext{C, layer, 3});
    b->to(torch::kFloat64);
    cdrmix::test::perturb(*b, 0.1, seed);
    return b;
}

// Runs x [B,T,C] whole, then in pieces [0,a) and token by token with the state
// carried; returns the largest difference.
double streaming_gap(cdrmix::Block &block, const Tensor &x, int64_t a) {
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    Tensor whole = block.forward(x, nullptr, ctx);
    cdrmix::BlockState state;
    std::vector<Tensor> parts;
    auto run = [&](int64_t s, int64_t e) {
        ForwardContext c;
        parts.push_back(block.forward(x.slice(1, s, e), &state, c));
    };
    run(0, a);
    for (int64_t t = a; t < x.size(1); ++t) run(t, t + 1);
    return max_abs_diff(torch::cat(parts, 1), whole);
}

// Central-difference check of the input and every parameter of a float64 block.
void expect_block_gradients(cdrmix::Block &b, int64_t B, int64_t T, int64_t C) {
    Tensor x = torch::randn({B, T, C}, torch::kFloat64).requires_grad_(true);
    Tensor proj = torch::randn({B, T, C}, torch::kFloat64);
    auto loss = [&] {
        ForwardContext ctx;
        return (b.forward(x, nullptr, ctx) * proj).sum();
    };
    cdrmix::test::expect_gradient_matches(x, loss, 8, 1e-6, 1e-5);
    for (const auto &p : b.named_parameters()) {
        SCOPED_TRACE(p.key());
        cdrmix::test::expect_gradient_matches(p.value(), loss, 3, 1e-6, 1e-5);
    }
}

std::string error_of(const Json &cfg, BlockContext ctx) {
    try {
        make_block(cfg, ctx);
    } catch (const cdrmix::Error &e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST(RWKV6TimeMix, DefaultsAtHiddenSizes64And128) {
    torch::manual_seed(0);
    for (int64_t C : {64, 128}) {
        SCOPED_TRACE(C);
        auto b = make_block({{"type", "rwkv6_time_mix"}}, BlockContext{C, 1, 2});
        auto p = b->named_parameters();
        EXPECT_EQ(p["time_maa_w1"].sizes(), (std::vector<int64_t>{C, 5 * 32}));
        EXPECT_EQ(p["time_maa_w2"].sizes(), (std::vector<int64_t>{5, 32, C}));
        EXPECT_EQ(p["time_decay"].sizes(), (std::vector<int64_t>{1, 1, C}));
        EXPECT_EQ(p["time_decay_w1"].sizes(), (std::vector<int64_t>{C, 64}));
        EXPECT_EQ(p["time_decay_w2"].sizes(), (std::vector<int64_t>{64, C}));
        EXPECT_EQ(p["time_faaaa"].sizes(), (std::vector<int64_t>{C / 64, 64}));
        for (const char *name : {"receptance.weight", "key.weight", "value.weight", "gate.weight", "output.weight"})
            EXPECT_EQ(p[name].sizes(), (std::vector<int64_t>{C, C})) << name;
        Tensor x = torch::randn({2, 3, C});
        ForwardContext ctx;
        cdrmix::BlockState state;
        EXPECT_EQ(b->forward(x, &state, ctx).sizes(), x.sizes());
        ASSERT_EQ(state.size(), 2u);
        EXPECT_EQ(state[0].sizes(), (std::vector<int64_t>{2, C}));
        EXPECT_EQ(state[1].sizes(), (std::vector<int64_t>{2, C / 64, 64, 64}));
    }
}

TEST(RWKV6TimeMix, ReferenceInitialisation) {
    // Layer 1 of 3: ratio_0_to_1 = 0.5, ratio_1_to_almost0 = 2/3.
    const int64_t C = 64;
    auto b = make_block({{"type", "rwkv6_time_mix"}, {"head_size", 16}}, BlockContext{C, 1, 3});
    auto p = b->named_parameters();
    const double r01 = 0.5, r10 = 2.0 / 3.0;
    const int64_t c = 40;
    const double ddd = double(c) / C, frac = double(c) / (C - 1);
    auto at = [&](const char *name) { return p[name].reshape({-1})[c].item<double>(); };
    EXPECT_NEAR(at("time_maa_x"), 1.0 - std::pow(ddd, r10), 1e-6);
    EXPECT_NEAR(at("time_maa_v"), 1.0 - (std::pow(ddd, r10) + 0.3 * r01), 1e-6);
    EXPECT_NEAR(at("time_maa_r"), 1.0 - std::pow(ddd, 0.5 * r10), 1e-6);
    EXPECT_NEAR(at("time_decay"), -6.0 + 5.0 * std::pow(frac, 0.7 + 1.3 * r01), 1e-5);
    EXPECT_NEAR(at("time_faaaa"), r01 * (1.0 - frac) + ((c + 1) % 3 - 1) * 0.1, 1e-6);
    EXPECT_NEAR(at("ln_x.weight"), std::pow(2.0 / 3.0, 0.7), 1e-6);
    EXPECT_EQ(p["time_maa_w1"].abs().max().item<double>(), 0.0);
    EXPECT_EQ(p["time_decay_w1"].abs().max().item<double>(), 0.0);
    EXPECT_LE(p["time_maa_w2"].abs().max().item<double>(), 0.01);
    EXPECT_EQ(p["output.weight"].abs().max().item<double>(), 0.0);
    // Orthogonal: W W^T = gain^2 I, gain 1 for receptance and value, 0.1 for key and gate.
    Tensor eye = torch::eye(C);
    auto gram = [&](const char *name) { return torch::matmul(p[name], p[name].t()); };
    EXPECT_LT(max_abs_diff(gram("receptance.weight"), eye), 1e-4);
    EXPECT_LT(max_abs_diff(gram("key.weight"), eye * 0.01), 1e-5);
    EXPECT_LT(max_abs_diff(gram("gate.weight"), eye * 0.01), 1e-5);
}

TEST(RWKV6TimeMix, StreamingEqualsParallel) {
    torch::manual_seed(1);
    auto b = double_block(kTimeMix, 16, 1, 11);
    EXPECT_LT(streaming_gap(*b, torch::randn({2, 21, 16}, torch::kFloat64), 13), 1e-5);
}

TEST(RWKV6TimeMix, GradientsMatchFiniteDifferences) {
    torch::manual_seed(2);
    auto b = double_block({{"type", "rwkv6_time_mix"}, {"head_size", 4}, {"mix_lora", 3}, {"decay_lora", 3}}, 8, 1,
                          12);
    expect_block_gradients(*b, 1, 5, 8);
}

TEST(RWKV6TimeMix, ConfigErrorsNameTheKey) {
    BlockContext ctx{64, 0, 1};
    EXPECT_NE(error_of({{"type", "rwkv6_time_mix"}, {"head_size", 48}}, ctx).find("multiple of head_size"),
              std::string::npos);
    EXPECT_NE(error_of({{"type", "rwkv6_time_mix"}, {"mix_lora", 0}}, ctx).find("key 'mix_lora' must be at least 1"),
              std::string::npos);
    EXPECT_NE(error_of({{"type", "rwkv6_time_mix"}, {"decay_lora", -1}}, ctx).find("key 'decay_lora'"),
              std::string::npos);
    EXPECT_EQ(error_of({{"type", "rwkv6_time_mix"}, {"head_sise", 8}}, ctx),
              "block 'rwkv6_time_mix' (test): unknown key 'head_sise'; did you mean 'head_size'?");
}

TEST(RWKV6ChannelMix, ReceptanceAddsZeroInitialisedGate) {
    const int64_t C = 16;
    auto plain = make_block({{"type", "rwkv_channel_mix"}}, BlockContext{C, 0, 2});
    auto gated = make_block(kGatedChannelMix, BlockContext{C, 0, 2});
    std::vector<std::string> names;
    for (const auto &p : plain->named_parameters()) names.push_back(p.key());
    EXPECT_EQ(names, (std::vector<std::string>{"x_k", "key.weight", "value.weight"}));
    auto p = gated->named_parameters();
    ASSERT_TRUE(p.contains("x_r") && p.contains("receptance.weight"));
    EXPECT_EQ(p["receptance.weight"].sizes(), (std::vector<int64_t>{C, C}));
    EXPECT_EQ(p["receptance.weight"].abs().max().item<double>(), 0.0);
    EXPECT_TRUE(plain->tokenwise());
    EXPECT_FALSE(gated->tokenwise());
    // sigmoid(0) = 1/2: with the gate at its initial value the output is half the ungated one.
    torch::NoGradGuard no_grad;
    p["value.weight"].normal_();
    Tensor x = torch::randn({2, 5, C});
    ForwardContext ctx;
    Tensor xk = x + (cdrmix::shift_tokens(x, Tensor()) - x) * p["x_k"];
    EXPECT_LT(max_abs_diff(gated->forward(x, nullptr, ctx), 0.5 * gated->forward_tokens(xk)), 1e-6);
}

TEST(RWKV6ChannelMix, ReceptanceStreamingEqualsParallel) {
    torch::manual_seed(3);
    auto b = double_block(kGatedChannelMix, 16, 1, 13);
    EXPECT_LT(streaming_gap(*b, torch::randn({2, 9, 16}, torch::kFloat64), 4), 1e-5);
}

TEST(RWKV6ChannelMix, ReceptanceGradientsMatchFiniteDifferences) {
    torch::manual_seed(4);
    auto b = double_block(kGatedChannelMix, 8, 1, 14);
    expect_block_gradients(*b, 1, 4, 8);
}

TEST(RWKV6ChannelMix, ReceptanceRejectedAsExpert) {
    BlockContext expert{16, 0, 1};
    expert.expert = true;
    const std::string direct = error_of(kGatedChannelMix, expert);
    EXPECT_NE(direct.find("key 'receptance' is not supported in an MoE expert"), std::string::npos) << direct;
    const Json moe = {{"type", "moe"}, {"num_experts", 2}, {"top_k", 1}, {"expert", kGatedChannelMix}};
    const std::string nested = error_of(moe, BlockContext{16, 0, 1});
    EXPECT_NE(nested.find("key 'receptance' is not supported in an MoE expert"), std::string::npos) << nested;
}
