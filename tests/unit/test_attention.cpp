// Attention blocks (attention, mla) created through the registry: defaults at
// hidden sizes 64 and 128 (identity at init), streaming (whole = pieces = token
// by token, float64) with and without sliding windows, per-query reference loops
// with RoPE written out pair by pair, GQA against an MHA with repeated k/v
// weights, RoPE depending only on relative positions, bounded sliding-window
// caches, MLA's per-token cache size, finite-difference gradients, config errors.
#include "test_util.hpp"

#include <cdrmix/error.hpp>

#include <cmath>

using cdrmix::BlockContext;
using cdrmix::ForwardContext;
using cdrmix::Json;
using cdrmix::test::make_block;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

std::shared_ptr<cdrmix::Block> double_block(const Json &cfg, int64_t C, uint64_t seed) {
    auto b = make_block(cfg, BlockContext{C, 1, 3});
    b->to(torch::kFloat64);
    cdrmix::test::perturb(*b, 0.2, seed);
    return b;
}

Tensor param(cdrmix::Block &b, const std::string &name) { return b.named_parameters()[name]; }

// Runs x [B,T,C] in consecutive chunks of the given sizes with the state carried.
Tensor chunked(cdrmix::Block &block, const Tensor &x, const std::vector<int64_t> &sizes,
               cdrmix::BlockState &state) {
    std::vector<Tensor> parts;
    int64_t s = 0;
    for (int64_t n : sizes) {
        ForwardContext ctx;
        parts.push_back(block.forward(x.slice(1, s, s + n), &state, ctx));
        s += n;
    }
    EXPECT_EQ(s, x.size(1));
    return torch::cat(parts, 1);
}

// Largest gap between x processed whole and x processed in each chunking: a
// prefix then token by token, and uneven chunks (some longer than any window
// tested, so their queries start at an offset into the cache).
double streaming_gap(cdrmix::Block &block, const Tensor &x) {
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    Tensor whole = block.forward(x, nullptr, ctx);
    const int64_t T = x.size(1);
    std::vector<int64_t> prefix_then_tokens{5};
    for (int64_t t = 5; t < T; ++t) prefix_then_tokens.push_back(1);
    double gap = 0;
    for (const auto &sizes : {prefix_then_tokens, std::vector<int64_t>{4, 1, 6, 2}, std::vector<int64_t>(T, 1)}) {
        cdrmix::BlockState state;
        gap = std::max(gap, max_abs_diff(chunked(block, x, sizes, state), whole));
    }
    return gap;
}

// Rotate-half RoPE of one vector at one position, pair by pair: channel i and
// i + D/2 turn by pos * theta^(-2i/D).
Tensor rope_reference(const Tensor &v, int64_t pos, double theta) {
    const int64_t D = v.size(0), half = D / 2;
    Tensor out = v.clone();
    for (int64_t i = 0; i < half; ++i) {
        const double angle = double(pos) * std::pow(theta, -2.0 * double(i) / double(D));
        const double a = v[i].item<double>(), b = v[i + half].item<double>();
        out[i] = a * std::cos(angle) - b * std::sin(angle);
        out[i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
    return out;
}

// Softmax attention of one query over explicit keys and values (lists of vectors).
Tensor attend(const std::vector<double> &scores, const std::vector<Tensor> &values) {
    double top = -INFINITY, total = 0;
    for (double s : scores) top = std::max(top, s);
    Tensor y = torch::zeros_like(values[0]);
    for (size_t j = 0; j < scores.size(); ++j) {
        const double w = std::exp(scores[j] - top);
        total += w;
        y += w * values[j];
    }
    return y / total;
}

// First key position the query at position t may read.
int64_t first_visible(int64_t t, int64_t window) { return window > 0 ? std::max<int64_t>(0, t - window + 1) : 0; }

Tensor linear(const Tensor &x, cdrmix::Block &b, const std::string &name) {
    auto params = b.named_parameters();
    const Tensor *bias = params.find(name + ".bias");
    return torch::nn::functional::linear(x, params[name + ".weight"], bias ? *bias : Tensor());
}

Tensor rms_norm(const Tensor &x, const Tensor &weight) {
    return x / torch::sqrt(x.square().mean(-1, true) + 1e-6) * weight;
}

// The attention block's output computed query by query over its visible keys.
Tensor attention_reference(cdrmix::Block &b, const Tensor &x, int64_t H, int64_t Hkv, int64_t D, int64_t window,
                           bool rope) {
    torch::NoGradGuard no_grad;
    const int64_t B = x.size(0), T = x.size(1);
    Tensor q = linear(x, b, "q_proj"), k = linear(x, b, "k_proj"), v = linear(x, b, "v_proj");
    Tensor y = torch::zeros({B, T, H * D}, torch::kFloat64);
    auto head = [&](const Tensor &t, int64_t bi, int64_t ti, int64_t h) {
        return t[bi][ti].slice(0, h * D, (h + 1) * D);
    };
    auto rotate = [&](const Tensor &t, int64_t pos) { return rope ? rope_reference(t, pos, 10000.0) : t; };
    for (int64_t bi = 0; bi < B; ++bi)
        for (int64_t h = 0; h < H; ++h) {
            const int64_t g = h / (H / Hkv);
            for (int64_t t = 0; t < T; ++t) {
                Tensor qt = rotate(head(q, bi, t, h), t);
                std::vector<double> scores;
                std::vector<Tensor> values;
                for (int64_t j = first_visible(t, window); j <= t; ++j) {
                    scores.push_back(qt.dot(rotate(head(k, bi, j, g), j)).item<double>() / std::sqrt(double(D)));
                    values.push_back(head(v, bi, j, g));
                }
                y[bi][t].slice(0, h * D, (h + 1) * D).copy_(attend(scores, values));
            }
        }
    return linear(y, b, "o_proj");
}

struct MLADims {
    int64_t H, R, Dn, Dr, Dv, window;
};

// The MLA block's output query by query: per-token latent and RoPE key, per-head
// up-projections, decoupled scores.
Tensor mla_reference(cdrmix::Block &b, const Tensor &x, const MLADims &d) {
    torch::NoGradGuard no_grad;
    const int64_t B = x.size(0), T = x.size(1);
    auto params = b.named_parameters();
    Tensor q = params.contains("q_proj.weight")
                   ? linear(x, b, "q_proj")
                   : linear(rms_norm(linear(x, b, "q_a_proj"), param(b, "q_a_layernorm.weight")), b, "q_b_proj");
    Tensor compressed = linear(x, b, "kv_a_proj_with_mqa");
    Tensor c_kv = rms_norm(compressed.slice(2, 0, d.R), param(b, "kv_a_layernorm.weight"));
    Tensor w_up = param(b, "kv_b_proj.weight").view({d.H, d.Dn + d.Dv, d.R});
    Tensor y = torch::zeros({B, T, d.H * d.Dv}, torch::kFloat64);
    for (int64_t bi = 0; bi < B; ++bi)
        for (int64_t h = 0; h < d.H; ++h) {
            Tensor w_uk = w_up[h].slice(0, 0, d.Dn), w_uv = w_up[h].slice(0, d.Dn, d.Dn + d.Dv);
            for (int64_t t = 0; t < T; ++t) {
                Tensor qh = q[bi][t].slice(0, h * (d.Dn + d.Dr), (h + 1) * (d.Dn + d.Dr));
                Tensor q_nope = qh.slice(0, 0, d.Dn), q_rope = rope_reference(qh.slice(0, d.Dn, d.Dn + d.Dr), t, 1e4);
                std::vector<double> scores;
                std::vector<Tensor> values;
                for (int64_t j = first_visible(t, d.window); j <= t; ++j) {
                    Tensor k_rope = rope_reference(compressed[bi][j].slice(0, d.R, d.R + d.Dr), j, 1e4);
                    const double s = q_nope.dot(w_uk.mv(c_kv[bi][j])).item<double>() +
                                     q_rope.dot(k_rope).item<double>();
                    scores.push_back(s / std::sqrt(double(d.Dn + d.Dr)));
                    values.push_back(w_uv.mv(c_kv[bi][j]));
                }
                y[bi][t].slice(0, h * d.Dv, (h + 1) * d.Dv).copy_(attend(scores, values));
            }
        }
    return linear(y, b, "o_proj");
}

Json mla_config(const MLADims &d, int64_t q_lora_rank) {
    return {{"type", "mla"},           {"num_heads", d.H},         {"kv_lora_rank", d.R},
            {"qk_nope_head_dim", d.Dn}, {"qk_rope_head_dim", d.Dr}, {"v_head_dim", d.Dv},
            {"sliding_window", d.window}, {"q_lora_rank", q_lora_rank}};
}

// Gradients of a random projection of the output, with respect to the input and
// a few elements of every parameter; `pieces` runs the sequence in two chunks so
// gradients also flow through the carried cache.
void check_gradients(const Json &cfg, bool pieces) {
    SCOPED_TRACE(cfg.dump() + (pieces ? " in pieces" : " whole"));
    auto b = double_block(cfg, 8, 21);
    torch::manual_seed(22);
    Tensor x = torch::randn({1, 5, 8}, torch::kFloat64).requires_grad_(true);
    Tensor proj = torch::randn({1, 5, 8}, torch::kFloat64);
    auto loss = [&] {
        cdrmix::BlockState state;
        ForwardContext ctx;
        Tensor y = pieces ? chunked(*b, x, {3, 2}, state) : b->forward(x, nullptr, ctx);
        return (y * proj).sum();
    };
    cdrmix::test::expect_gradient_matches(x, loss, 8, 1e-6, 1e-6);
    for (const auto &p : b->named_parameters()) {
        SCOPED_TRACE(p.key());
        cdrmix::test::expect_gradient_matches(p.value(), loss, 3, 1e-6, 1e-6);
    }
}

} // namespace

TEST(AttentionBlocks, DefaultsBuildAtBothWidthsAndStartAsZero) {
    for (int64_t C : {64, 128}) {
        torch::manual_seed(0);
        Tensor x = torch::randn({2, 5, C});
        for (const char *type : {"attention", "mla"}) {
            SCOPED_TRACE(std::string(type) + " at " + std::to_string(C));
            auto b = make_block({{"type", type}}, BlockContext{C, 0, 2});
            ForwardContext ctx;
            Tensor y = b->forward(x, nullptr, ctx);
            EXPECT_EQ(y.sizes(), x.sizes());
            EXPECT_EQ(y.abs().max().item<double>(), 0.0); // o_proj is zero: the residual stack starts as identity
        }
    }
    // hidden_size/64 heads of width 64; MLA's latent is hidden_size/4 (at least 16) plus a 16-wide RoPE key.
    auto att = make_block({{"type", "attention"}}, BlockContext{128, 0, 1});
    EXPECT_EQ(param(*att, "q_proj.weight").sizes(), (std::vector<int64_t>{128, 128}));
    auto mla64 = make_block({{"type", "mla"}}, BlockContext{64, 0, 1});
    EXPECT_EQ(param(*mla64, "kv_a_proj_with_mqa.weight").sizes(), (std::vector<int64_t>{16 + 16, 64}));
    auto mla128 = make_block({{"type", "mla"}}, BlockContext{128, 0, 1});
    EXPECT_EQ(param(*mla128, "kv_a_proj_with_mqa.weight").sizes(), (std::vector<int64_t>{32 + 16, 128}));
    EXPECT_EQ(param(*mla128, "kv_b_proj.weight").sizes(), (std::vector<int64_t>{2 * (32 + 32), 32}));
}

TEST(AttentionBlock, StreamingEqualsParallel) {
    torch::manual_seed(1);
    Tensor x = torch::randn({2, 13, 16}, torch::kFloat64);
    const std::vector<Json> configs = {
        {{"type", "attention"}, {"num_heads", 2}},
        {{"type", "attention"}, {"num_heads", 4}, {"num_kv_heads", 2}, {"sliding_window", 3}},
        {{"type", "attention"}, {"num_heads", 2}, {"sliding_window", 1}},
        {{"type", "attention"}, {"num_heads", 2}, {"rope", false}, {"sliding_window", 5}, {"bias", true}},
    };
    for (const Json &cfg : configs) EXPECT_LT(streaming_gap(*double_block(cfg, 16, 11), x), 1e-5) << cfg.dump();
}

TEST(AttentionBlock, MatchesPerQueryReference) {
    torch::manual_seed(2);
    Tensor x = torch::randn({2, 9, 16}, torch::kFloat64);
    for (int64_t window : {0, 4}) {
        for (bool rope : {true, false}) {
            Json cfg = {{"type", "attention"}, {"num_heads", 4}, {"num_kv_heads", 2}, {"head_dim", 6},
                        {"sliding_window", window}, {"rope", rope}, {"bias", true}};
            auto b = double_block(cfg, 16, 12);
            ForwardContext ctx;
            Tensor y = b->forward(x, nullptr, ctx);
            EXPECT_LT(max_abs_diff(y, attention_reference(*b, x, 4, 2, 6, window, rope)), 1e-10) << cfg.dump();
        }
    }
}

TEST(AttentionBlock, GroupedQueriesEqualMHAWithRepeatedKeyValueWeights) {
    const int64_t C = 16, H = 4, Hkv = 2, D = 4;
    for (int64_t window : {0, 3}) {
        auto gqa = double_block({{"type", "attention"}, {"num_heads", H}, {"num_kv_heads", Hkv}, {"head_dim", D},
                                 {"sliding_window", window}},
                                C, 13);
        auto mha = make_block({{"type", "attention"}, {"num_heads", H}, {"head_dim", D}, {"sliding_window", window}},
                              BlockContext{C, 1, 3});
        mha->to(torch::kFloat64);
        {
            torch::NoGradGuard no_grad;
            auto src = gqa->named_parameters();
            for (auto &p : mha->named_parameters()) {
                const Tensor &w = src[p.key()];
                // Query head h reads KV head h / (H / Hkv): repeat each KV head's rows H / Hkv times.
                if (w.size(0) == Hkv * D)
                    p.value().copy_(w.view({Hkv, D, C}).repeat_interleave(H / Hkv, 0).reshape({H * D, C}));
                else
                    p.value().copy_(w);
            }
        }
        torch::manual_seed(3);
        Tensor x = torch::randn({2, 8, C}, torch::kFloat64);
        ForwardContext c1, c2;
        EXPECT_LT(max_abs_diff(gqa->forward(x, nullptr, c1), mha->forward(x, nullptr, c2)), 1e-12) << window;
    }
}

TEST(AttentionBlock, RoPEDependsOnlyOnRelativePosition) {
    torch::manual_seed(4);
    Tensor x = torch::randn({2, 7, 16}, torch::kFloat64);
    for (int64_t window : {0, 3}) {
        Json cfg = {{"type", "attention"}, {"num_heads", 4}, {"num_kv_heads", 2}, {"sliding_window", window}};
        auto b = double_block(cfg, 16, 14);
        torch::NoGradGuard no_grad;
        ForwardContext ctx;
        Tensor at_zero = b->forward(x, nullptr, ctx);
        // A fresh sequence (empty caches) starting at absolute position 1000.
        Tensor empty = torch::zeros({2, 2, 0, 4}, torch::kFloat64); // [B,Hkv,0,D]
        cdrmix::BlockState state = {empty, empty, torch::scalar_tensor(1000, torch::kInt64)};
        Tensor shifted = b->forward(x, &state, ctx);
        EXPECT_LT(max_abs_diff(shifted, at_zero), 1e-10) << window;
        EXPECT_EQ(state[2].item<int64_t>(), 1007);

        // RoPE is not a no-op: the same weights without it give another output.
        cfg["rope"] = false;
        auto plain = make_block(cfg, BlockContext{16, 1, 3});
        plain->to(torch::kFloat64);
        auto src = b->named_parameters();
        for (auto &p : plain->named_parameters()) p.value().copy_(src[p.key()]);
        EXPECT_GT(max_abs_diff(plain->forward(x, nullptr, ctx), at_zero), 1e-4) << window;
    }
}

TEST(AttentionBlock, SlidingWindowCacheStaysBounded) {
    auto b =
        double_block({{"type", "attention"}, {"num_heads", 2}, {"num_kv_heads", 1}, {"sliding_window", 4}}, 16, 15);
    torch::manual_seed(5);
    Tensor x = torch::randn({1, 50, 16}, torch::kFloat64);
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    Tensor whole = b->forward(x, nullptr, ctx);
    cdrmix::BlockState state;
    std::vector<Tensor> parts;
    for (int64_t t = 0; t < 50; ++t) {
        parts.push_back(b->forward(x.slice(1, t, t + 1), &state, ctx));
        ASSERT_EQ(state.size(), 3u);
        EXPECT_EQ(state[0].size(2), std::min<int64_t>(t + 1, 3)); // the W-1 most recent keys
        EXPECT_LE(state[1].size(2), 4);
        EXPECT_EQ(state[2].item<int64_t>(), t + 1);
    }
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), whole), 1e-10);
}

TEST(AttentionMLA, StreamingEqualsParallel) {
    torch::manual_seed(6);
    Tensor x = torch::randn({2, 13, 16}, torch::kFloat64);
    const MLADims full{2, 8, 4, 4, 5, 0}, windowed{2, 8, 4, 4, 5, 3}, single{3, 6, 2, 2, 3, 1};
    for (const Json &cfg : {mla_config(full, 0), mla_config(full, 6), mla_config(windowed, 0), mla_config(windowed, 6),
                            mla_config(single, 4)})
        EXPECT_LT(streaming_gap(*double_block(cfg, 16, 16), x), 1e-5) << cfg.dump();
}

TEST(AttentionMLA, MatchesPerQueryReference) {
    torch::manual_seed(7);
    Tensor x = torch::randn({2, 9, 16}, torch::kFloat64);
    for (const MLADims &d : {MLADims{2, 8, 4, 4, 5, 0}, MLADims{3, 6, 2, 4, 3, 4}})
        for (int64_t q_rank : {0, 6}) {
            Json cfg = mla_config(d, q_rank);
            auto b = double_block(cfg, 16, 17);
            ForwardContext ctx;
            EXPECT_LT(max_abs_diff(b->forward(x, nullptr, ctx), mla_reference(*b, x, d)), 1e-10) << cfg.dump();
        }
}

TEST(AttentionMLA, RoPEDependsOnlyOnRelativePosition) {
    torch::manual_seed(8);
    Tensor x = torch::randn({2, 7, 16}, torch::kFloat64);
    auto b = double_block(mla_config({2, 8, 4, 4, 5, 3}, 6), 16, 18);
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    Tensor at_zero = b->forward(x, nullptr, ctx);
    cdrmix::BlockState state = {torch::zeros({2, 0, 8}, torch::kFloat64), torch::zeros({2, 0, 4}, torch::kFloat64),
                                torch::scalar_tensor(1000, torch::kInt64)};
    EXPECT_LT(max_abs_diff(b->forward(x, &state, ctx), at_zero), 1e-10);
}

TEST(AttentionMLA, CacheHoldsLatentAndRopeKeyPerToken) {
    const MLADims d{4, 8, 6, 4, 6, 0};
    auto b = double_block(mla_config(d, 0), 16, 19);
    torch::manual_seed(9);
    Tensor x = torch::randn({2, 7, 16}, torch::kFloat64);
    torch::NoGradGuard no_grad;
    cdrmix::BlockState state;
    chunked(*b, x, {4, 3}, state);
    ASSERT_EQ(state.size(), 3u);
    EXPECT_EQ(state[0].sizes(), (std::vector<int64_t>{2, 7, d.R}));
    EXPECT_EQ(state[1].sizes(), (std::vector<int64_t>{2, 7, d.Dr}));
    EXPECT_EQ(state[2].item<int64_t>(), 7);
    // kv_lora_rank + qk_rope_head_dim floats per token, whatever the number of heads
    // (a full KV cache would hold 2 * 4 heads * 6 = 48).
    EXPECT_EQ((state[0].numel() + state[1].numel()) / (2 * 7), d.R + d.Dr);

    // With a sliding window the cache stays bounded over 50 streamed tokens.
    auto w = double_block(mla_config({2, 8, 4, 4, 5, 4}, 0), 16, 20);
    Tensor long_x = torch::randn({1, 50, 16}, torch::kFloat64);
    ForwardContext ctx;
    Tensor whole = w->forward(long_x, nullptr, ctx);
    cdrmix::BlockState ws;
    std::vector<Tensor> parts;
    for (int64_t t = 0; t < 50; ++t) {
        parts.push_back(w->forward(long_x.slice(1, t, t + 1), &ws, ctx));
        EXPECT_EQ(ws[0].size(1), std::min<int64_t>(t + 1, 3));
        EXPECT_EQ(ws[1].size(1), ws[0].size(1));
    }
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), whole), 1e-10);
}

TEST(AttentionBlock, GradientsMatchFiniteDifferences) {
    const Json cfg = {{"type", "attention"}, {"num_heads", 2}, {"num_kv_heads", 1}, {"head_dim", 4},
                      {"sliding_window", 3}, {"bias", true}};
    check_gradients(cfg, false);
    check_gradients(cfg, true);
}

TEST(AttentionMLA, GradientsMatchFiniteDifferences) {
    check_gradients(mla_config({2, 4, 2, 2, 3, 3}, 4), false);
    check_gradients(mla_config({2, 4, 2, 2, 3, 0}, 0), true);
}

TEST(AttentionBlocks, ConfigErrorsNameTheKey) {
    auto message = [](const Json &cfg) {
        try {
            make_block(cfg, BlockContext{64, 0, 1});
        } catch (const cdrmix::Error &e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(message({{"type", "attention"}, {"num_heads", 4}, {"num_kv_heads", 3}}).find("key 'num_kv_heads'"),
              std::string::npos);
    EXPECT_NE(message({{"type", "attention"}, {"head_dim", 5}}).find("must be even with rope"), std::string::npos);
    EXPECT_EQ(message({{"type", "attention"}, {"head_dim", 5}, {"rope", false}}), "(no error)");
    EXPECT_NE(message({{"type", "attention"}, {"sliding_window", -1}}).find("key 'sliding_window'"), std::string::npos);
    // No key is close to "window": the message lists the valid ones.
    EXPECT_EQ(message({{"type", "attention"}, {"window", 4}}),
              "block 'attention' (test): unknown key 'window'; valid keys: num_heads, num_kv_heads, head_dim, rope, "
              "rope_theta, sliding_window, bias");
    EXPECT_NE(message({{"type", "attention"}, {"sliding_windw", 4}}).find("did you mean 'sliding_window'?"),
              std::string::npos);
    EXPECT_NE(message({{"type", "mla"}, {"qk_rope_head_dim", 3}}).find("key 'qk_rope_head_dim' must be even"),
              std::string::npos);
    EXPECT_NE(message({{"type", "mla"}, {"kv_lora_rank", 0}}).find("key 'kv_lora_rank'"), std::string::npos);
    EXPECT_NE(message({{"type", "mla"}, {"q_lora_rank", -2}}).find("key 'q_lora_rank'"), std::string::npos);
}
