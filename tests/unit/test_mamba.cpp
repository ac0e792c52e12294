// The mamba1, mamba2, mamba3, swiglu and relu2 block plugins, created through
// the registry: defaults at hidden sizes 64 and 128; Mamba-2's chunked SSD scan,
// both of Mamba-1's scans (the fused CPU op and the two-level tensor scan) and
// Mamba-3's trapezoidal rotary scan against plain token-by-token references
// written here from the formulas (Mamba-3's turns the state itself, as a
// complex state, rather than B and C; forward and every gradient, float64,
// several chunk sizes and lengths, lengths that are not a multiple of the
// chunk); streaming equal to parallel, finite-difference gradients, gradients
// through the carried state, key errors; the two FFNs against their formulas
// and as MoE experts; and whole models built from them (Mamba-1 in an
// Oxidizr-style hybrid with latent attention and MoE).
#include "model/model.hpp"
#include "test_util.hpp"

#include <cdrmix/error.hpp>

#include <map>

using cdrmix::BlockContext;
using cdrmix::ForwardContext;
using cdrmix::Json;
using cdrmix::test::make_block;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

const Json kMamba = {{"type", "mamba2"}, {"d_state", 8}, {"head_dim", 8}, {"chunk_size", 4}};

std::shared_ptr<cdrmix::Block> double_block(const Json &cfg, int64_t C, uint64_t seed) {
    auto b = make_block(cfg, BlockContext{C, 1, 3});
    b->to(torch::kFloat64);
    cdrmix::test::perturb(*b, 0.1, seed);
    return b;
}

// Mamba-2 token by token from the block's parameters: the conv as a sum over
// its window, the state update S = exp(dt A) S + dt x B^T, y = S C + D x.
Tensor mamba2_reference(cdrmix::Block &block, const Tensor &u, int64_t N, int64_t P) {
    auto p = block.named_parameters();
    const Tensor w_in = p["in_proj.weight"], conv_w = p["conv1d.weight"], conv_b = p["conv1d.bias"];
    const Tensor dt_bias = p["dt_bias"], A = -torch::exp(p["A_log"]), D = p["D"];
    const int64_t Bsz = u.size(0), T = u.size(1), H = dt_bias.size(0), d_inner = H * P;
    const int64_t conv_dim = d_inner + 2 * N, K = conv_w.size(2);
    Tensor proj = u.matmul(w_in.t());
    Tensor z = proj.narrow(-1, 0, d_inner);
    Tensor xbc_in = proj.narrow(-1, d_inner, conv_dim);
    Tensor dt_in = proj.narrow(-1, d_inner + conv_dim, H);
    Tensor S = torch::zeros({Bsz, H, P, N}, u.options());
    std::vector<Tensor> ys;
    for (int64_t t = 0; t < T; ++t) {
        Tensor acc = conv_b.unsqueeze(0).expand({Bsz, conv_dim});
        for (int64_t k = 0; k < K; ++k) {
            const int64_t s = t - (K - 1) + k;
            if (s >= 0) acc = acc + conv_w.select(1, 0).select(1, k) * xbc_in.select(1, s);
        }
        Tensor xbc = torch::silu(acc);
        Tensor x = xbc.narrow(-1, 0, d_inner).reshape({Bsz, H, P});
        Tensor b = xbc.narrow(-1, d_inner, N), c = xbc.narrow(-1, d_inner + N, N);
        Tensor dt = torch::softplus(dt_in.select(1, t) + dt_bias); // [B,H]
        S = torch::exp(dt * A).view({Bsz, H, 1, 1}) * S +
            (dt.unsqueeze(-1) * x).unsqueeze(-1) * b.view({Bsz, 1, 1, N});
        Tensor y = (S * c.view({Bsz, 1, 1, N})).sum(-1) + D.view({1, H, 1}) * x;
        ys.push_back(y.reshape({Bsz, d_inner}));
    }
    Tensor g = torch::stack(ys, 1) * torch::silu(z);
    g = g * torch::rsqrt(g.square().mean(-1, true) + 1e-5) * p["norm.weight"];
    return g.matmul(p["out_proj.weight"].t());
}

// Mamba-1 token by token from the block's parameters: the conv as a sum over
// its window, per channel h = exp(dt A) h + dt x B, y = C . h + D x, gated by silu(z).
Tensor mamba1_reference(cdrmix::Block &block, const Tensor &u) {
    auto p = block.named_parameters();
    const Tensor w_in = p["in_proj.weight"], conv_w = p["conv1d.weight"], conv_b = p["conv1d.bias"];
    const Tensor w_x = p["x_proj.weight"], w_dt = p["dt_proj.weight"], b_dt = p["dt_proj.bias"];
    const Tensor A = -torch::exp(p["A_log"]), D = p["D"];
    const int64_t Bsz = u.size(0), T = u.size(1), d_inner = A.size(0), N = A.size(1);
    const int64_t R = w_dt.size(1), K = conv_w.size(2);
    Tensor proj = u.matmul(w_in.t());
    Tensor x_in = proj.narrow(-1, 0, d_inner), z = proj.narrow(-1, d_inner, d_inner);
    Tensor h = torch::zeros({Bsz, d_inner, N}, u.options());
    std::vector<Tensor> ys;
    for (int64_t t = 0; t < T; ++t) {
        Tensor acc = conv_b.unsqueeze(0).expand({Bsz, d_inner});
        for (int64_t k = 0; k < K; ++k) {
            const int64_t s = t - (K - 1) + k;
            if (s >= 0) acc = acc + conv_w.select(1, 0).select(1, k) * x_in.select(1, s);
        }
        Tensor x = torch::silu(acc); // [B, d_inner]
        Tensor dbc = x.matmul(w_x.t());
        Tensor dt = torch::softplus(dbc.narrow(-1, 0, R).matmul(w_dt.t()) + b_dt); // [B, d_inner]
        Tensor b = dbc.narrow(-1, R, N), c = dbc.narrow(-1, R + N, N);
        h = torch::exp(dt.unsqueeze(-1) * A) * h + (dt * x).unsqueeze(-1) * b.unsqueeze(1);
        Tensor y = (h * c.unsqueeze(1)).sum(-1) + D * x;
        ys.push_back(y * torch::silu(z.select(1, t)));
    }
    return torch::stack(ys, 1).matmul(p["out_proj.weight"].t());
}

// Turns the pairs (v[..., i], v[..., i + N/2]) by phi[..., i].
Tensor turn(const Tensor &v, const Tensor &phi) {
    const int64_t half = v.size(-1) / 2;
    Tensor v1 = v.narrow(-1, 0, half), v2 = v.narrow(-1, half, half);
    return torch::cat({v1 * torch::cos(phi) - v2 * torch::sin(phi), v1 * torch::sin(phi) + v2 * torch::cos(phi)}, -1);
}

Tensor rms(const Tensor &t) { return t * torch::rsqrt(t.square().mean(-1, true) + 1e-5); }

// Mamba-3 token by token from the block's parameters, in the fixed frame: the
// state S [P x N] per head is decayed and turned by dt theta each step (the
// complex-valued state), the trapezoid's previous input term decayed and turned
// with it: S = Rot(a S + (1 - lambda) dt a X_prev B_prev^T) + lambda dt X B^T, y = S C + D x.
Tensor mamba3_reference(cdrmix::Block &block, const Tensor &u) {
    auto p = block.named_parameters();
    const Tensor A = -torch::exp(p["A_log"]), D = p["D"], b_bias = p["b_bias"], c_bias = p["c_bias"];
    const Tensor bc_norm = p["bc_norm"];
    const int64_t Bsz = u.size(0), T = u.size(1), H = b_bias.size(0), R = b_bias.size(1), N = b_bias.size(2);
    const int64_t d_inner = p["norm.weight"].size(0), P = d_inner / H, conv_dim = d_inner + 2 * R * N;
    const bool conv = p.contains("conv1d.weight"), rope = p.contains("theta_proj.weight");
    const bool mimo = p.contains("mimo_x_up");
    Tensor proj = u.matmul(p["in_proj.weight"].t());
    Tensor z = proj.narrow(-1, 0, d_inner), xbc_in = proj.narrow(-1, d_inner, conv_dim);
    Tensor dt_all = torch::softplus(proj.narrow(-1, d_inner + conv_dim, H) + p["dt_bias"]);
    Tensor lam_all = torch::sigmoid(u.matmul(p["lambda_proj.weight"].t()) + p["lambda_proj.bias"]);
    Tensor S = torch::zeros({Bsz, H, P, N}, u.options()), prev = torch::zeros_like(S);
    std::vector<Tensor> ys;
    for (int64_t t = 0; t < T; ++t) {
        Tensor xbc = xbc_in.select(1, t);
        if (conv) {
            const Tensor w = p["conv1d.weight"];
            const int64_t K = w.size(2);
            Tensor acc = p["conv1d.bias"].unsqueeze(0).expand({Bsz, conv_dim});
            for (int64_t k = 0; k < K; ++k) {
                const int64_t s = t - (K - 1) + k;
                if (s >= 0) acc = acc + w.select(1, 0).select(1, k) * xbc_in.select(1, s);
            }
            xbc = torch::silu(acc);
        }
        Tensor x = xbc.narrow(-1, 0, d_inner).reshape({Bsz, H, P});
        Tensor b = rms(xbc.narrow(-1, d_inner, R * N).reshape({Bsz, 1, R, N})) * bc_norm[0] + b_bias; // [B,H,R,N]
        Tensor c = rms(xbc.narrow(-1, d_inner + R * N, R * N).reshape({Bsz, 1, R, N})) * bc_norm[1] + c_bias;
        Tensor X = mimo ? x.unsqueeze(2) * p["mimo_x_up"] : x.unsqueeze(2); // [B,H,R,P]
        Tensor outer = X.transpose(-1, -2).matmul(b);                      // sum_r X_r B_r^T
        Tensor dt = dt_all.select(1, t).view({Bsz, H, 1, 1}), lam = lam_all.select(1, t).view({Bsz, H, 1, 1});
        Tensor alpha = torch::exp(dt * A.view({1, H, 1, 1}));
        Tensor carried = alpha * S + (1 - lam) * dt * alpha * prev;
        if (rope) {
            Tensor theta = u.select(1, t).matmul(p["theta_proj.weight"].t()) + p["theta_proj.bias"]; // [B,N/2]
            carried = turn(carried, dt * theta.view({Bsz, 1, 1, N / 2}));
        }
        S = carried + lam * dt * outer;
        prev = outer;
        Tensor y = S.matmul(c.transpose(-1, -2)); // [B,H,P,R]
        y = mimo ? (y.transpose(-1, -2) * p["mimo_x_down"]).sum(2) : y.squeeze(-1);
        ys.push_back((y + D.view({1, H, 1}) * x).reshape({Bsz, d_inner}));
    }
    Tensor g = rms(torch::stack(ys, 1) * torch::silu(z)) * p["norm.weight"];
    return g.matmul(p["out_proj.weight"].t());
}

// The error message a block config raises at width 64, or "(no error)".
std::string block_error(const Json &cfg) {
    try {
        make_block(cfg, BlockContext{64, 0, 1});
    } catch (const cdrmix::Error &e) {
        return e.what();
    }
    return "(no error)";
}

// Runs x [B,T,C] whole, then as consecutive pieces ending at `cuts` (the last
// cut is T) with the state carried; returns the largest difference.
double pieces_gap(cdrmix::Block &block, const Tensor &x, const std::vector<int64_t> &cuts) {
    torch::NoGradGuard no_grad;
    ForwardContext ctx;
    Tensor whole = block.forward(x, nullptr, ctx);
    cdrmix::BlockState state;
    std::vector<Tensor> parts;
    int64_t start = 0;
    for (int64_t end : cuts) {
        ForwardContext c;
        parts.push_back(block.forward(x.slice(1, start, end), &state, c));
        start = end;
    }
    return max_abs_diff(torch::cat(parts, 1), whole);
}

std::vector<int64_t> token_cuts(int64_t from, int64_t T) {
    std::vector<int64_t> cuts;
    for (int64_t t = from + 1; t <= T; ++t) cuts.push_back(t);
    return cuts;
}

} // namespace

TEST(Mamba2, DefaultsBuildAt64And128WithDocumentedState) {
    torch::manual_seed(0);
    for (int64_t C : {64, 128}) {
        auto b = make_block({{"type", "mamba2"}}, BlockContext{C, 0, 2});
        Tensor x = torch::randn({2, 5, C});
        cdrmix::BlockState state;
        ForwardContext ctx;
        EXPECT_EQ(b->forward(x, &state, ctx).sizes(), x.sizes());
        const int64_t d_inner = 2 * C, H = d_inner / 32;
        ASSERT_EQ(state.size(), 2u);
        EXPECT_EQ(state[0].sizes(), (std::vector<int64_t>{2, d_inner + 2 * 64, 3}));
        EXPECT_EQ(state[1].sizes(), (std::vector<int64_t>{2, H, 32, 64}));
        // out_proj starts at zero, so a residual stack starts as the identity.
        EXPECT_EQ(b->forward(x, nullptr, ctx).abs().max().item<double>(), 0.0);
        // softplus(dt_bias) is the initial step size, log-uniform in [1e-3, 1e-1].
        Tensor dt = torch::softplus(b->named_parameters()["dt_bias"]);
        EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-5));
        EXPECT_LE(dt.max().item<double>(), 1e-1 * (1 + 1e-5));
    }
}

TEST(Mamba2, ChunkedScanEqualsSequentialReference) {
    torch::manual_seed(1);
    const int64_t C = 16, T = 11;
    Tensor x = torch::randn({2, T, C}, torch::kFloat64);
    Tensor proj = torch::randn({2, T, C}, torch::kFloat64);
    auto source = double_block(kMamba, C, 21);
    for (int64_t Q : {1, 3, 4, 64}) {
        SCOPED_TRACE("chunk_size " + std::to_string(Q));
        Json cfg = kMamba;
        cfg["chunk_size"] = Q;
        auto b = make_block(cfg, BlockContext{C, 1, 3});
        b->to(torch::kFloat64);
        {
            torch::NoGradGuard no_grad;
            auto src = source->named_parameters();
            for (auto &p : b->named_parameters()) p.value().copy_(src[p.key()]);
        }
        Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
        ForwardContext ctx;
        Tensor y = b->forward(xa, nullptr, ctx);
        Tensor y_ref = mamba2_reference(*b, xb, 8, 8);
        EXPECT_LT(max_abs_diff(y, y_ref), 1e-12);

        (y * proj).sum().backward();
        std::map<std::string, Tensor> grads;
        for (auto &p : b->named_parameters()) {
            grads[p.key()] = p.value().grad().clone();
            p.value().mutable_grad().zero_();
        }
        (y_ref * proj).sum().backward();
        EXPECT_LT(max_abs_diff(xa.grad(), xb.grad()), 1e-12);
        for (auto &p : b->named_parameters())
            EXPECT_LT(max_abs_diff(grads[p.key()], p.value().grad()), 1e-11) << p.key();
    }
}

TEST(Mamba2, StreamingEqualsParallel) {
    torch::manual_seed(2);
    auto b = double_block(kMamba, 16, 22);
    Tensor x = torch::randn({2, 21, 16}, torch::kFloat64);
    // Pieces longer and shorter than a chunk and than the conv window, then single tokens.
    std::vector<int64_t> cuts = {7, 8, 10, 19};
    for (int64_t t : token_cuts(19, 21)) cuts.push_back(t);
    EXPECT_LT(pieces_gap(*b, x, cuts), 1e-10);
    EXPECT_LT(pieces_gap(*b, x, token_cuts(0, 21)), 1e-10);
    EXPECT_LT(pieces_gap(*b, x, {21}), 1e-12);
    // The long default chunk, a wide conv, and a single-step start.
    auto wide = double_block({{"type", "mamba2"}, {"d_state", 4}, {"head_dim", 4}, {"d_conv", 6}}, 8, 23);
    EXPECT_LT(pieces_gap(*wide, x.narrow(-1, 0, 8), {1, 3, 12, 13, 21}), 1e-10);
}

TEST(Mamba2, GradientsMatchFiniteDifferences) {
    torch::manual_seed(3);
    const Json cfg = {{"type", "mamba2"}, {"d_state", 4}, {"head_dim", 4}, {"d_conv", 3}, {"chunk_size", 3}};
    auto b = double_block(cfg, 8, 24);
    Tensor x = torch::randn({1, 5, 8}, torch::kFloat64).requires_grad_(true);
    Tensor proj = torch::randn({1, 5, 8}, torch::kFloat64);
    auto loss = [&] {
        ForwardContext ctx;
        return (b->forward(x, nullptr, ctx) * proj).sum();
    };
    cdrmix::test::expect_gradient_matches(x, loss, 8, 1e-6, 1e-6);
    for (const auto &p : b->named_parameters()) {
        SCOPED_TRACE(p.key());
        cdrmix::test::expect_gradient_matches(p.value(), loss, 4, 1e-6, 1e-6);
    }
}

TEST(Mamba2, GradientsFlowThroughTheCarriedState) {
    torch::manual_seed(4);
    auto b = double_block(kMamba, 16, 25);
    Tensor x = torch::randn({2, 9, 16}, torch::kFloat64);
    Tensor proj = torch::randn({2, 9, 16}, torch::kFloat64);
    Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
    ForwardContext ctx;
    (b->forward(xa, nullptr, ctx) * proj).sum().backward();
    cdrmix::BlockState state;
    Tensor first = b->forward(xb.slice(1, 0, 6), &state, ctx);
    Tensor second = b->forward(xb.slice(1, 6, 9), &state, ctx);
    (torch::cat({first, second}, 1) * proj).sum().backward();
    EXPECT_LT(max_abs_diff(xa.grad(), xb.grad()), 1e-12);
}

TEST(Mamba2, ConfigErrorsNameTheKey) {
    const auto message = block_error;
    EXPECT_NE(message({{"type", "mamba2"}, {"head_dim", 48}}).find("must be a multiple of head_dim 48"),
              std::string::npos);
    EXPECT_NE(message({{"type", "mamba2"}, {"chunk_size", 0}}).find("key 'chunk_size'"), std::string::npos);
    EXPECT_NE(message({{"type", "mamba2"}, {"d_stat", 8}}).find("unknown key 'd_stat'; did you mean 'd_state'?"), std::string::npos);
}

TEST(Mamba2, ModelWithSwigluAndRelu2ExpertsStreamsAndTrains) {
    const Json spec = {{"vocab_size", 11},
                       {"hidden_size", 16},
                       {"num_layers", 2},
                       {"mixer", kMamba},
                       {"ffn", {{"type", "swiglu"}}},
                       {"moe_every", 2},
                       {"num_experts", 3},
                       {"top_k", 2},
                       {"expert", {{"type", "relu2"}, {"expansion", 2}}}};
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    auto params = m->named_parameters();
    for (const char *name : {"blocks.0.att.in_proj.weight", "blocks.0.att.A_log", "blocks.0.att.norm.weight",
                             "blocks.0.ffn.w3.weight", "blocks.1.att.conv1d.bias", "blocks.1.ffn.experts.2.key.weight"})
        EXPECT_TRUE(params.contains(name)) << name;
    m->to(torch::kFloat64);
    cdrmix::test::perturb(*m, 0.05, 30);
    torch::manual_seed(8);
    Tensor batch = torch::randint(0, 11, {2, 10}, torch::kInt64);
    auto out = m->loss(batch);
    out.total.backward();
    EXPECT_TRUE(params["blocks.0.att.A_log"].grad().isfinite().all().item<bool>());
    EXPECT_GT(params["blocks.0.att.in_proj.weight"].grad().abs().max().item<double>(), 0.0);

    m->eval();
    torch::NoGradGuard no_grad;
    Tensor tokens = batch.slice(1, 0, 9);
    ForwardContext ctx;
    Tensor whole = m->forward(tokens, nullptr, ctx);
    cdrmix::ModelState state;
    std::vector<Tensor> parts;
    for (auto [s, e] : {std::pair<int64_t, int64_t>{0, 5}, {5, 6}, {6, 7}, {7, 9}}) {
        ForwardContext c;
        parts.push_back(m->forward(tokens.slice(1, s, e), &state, c));
    }
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), whole), 1e-10);
}

const Json kMamba1 = {{"type", "mamba1"}, {"d_state", 4}, {"dt_rank", 3}};

// Mamba-1's two scan forms: the fused CPU op and the two-level scan in tensor ops.
const std::vector<std::string> kMamba1Scans = {"fused", "chunked"};

Json with_scan(Json cfg, const std::string &scan) {
    cfg["scan"] = scan;
    return cfg;
}

TEST(Mamba1, DefaultsBuildAt64And128WithDocumentedState) {
    torch::manual_seed(10);
    for (int64_t C : {64, 128}) {
        auto b = make_block({{"type", "mamba1"}}, BlockContext{C, 0, 2});
        Tensor x = torch::randn({2, 5, C});
        cdrmix::BlockState state;
        ForwardContext ctx;
        EXPECT_EQ(b->forward(x, &state, ctx).sizes(), x.sizes());
        const int64_t d_inner = 2 * C;
        ASSERT_EQ(state.size(), 2u);
        EXPECT_EQ(state[0].sizes(), (std::vector<int64_t>{2, d_inner, 3}));
        EXPECT_EQ(state[1].sizes(), (std::vector<int64_t>{2, d_inner, 16}));
        auto p = b->named_parameters();
        // dt_rank = ceil(hidden_size / 16); x_proj yields dt_rank + 2 * d_state.
        EXPECT_EQ(p["dt_proj.weight"].sizes(), (std::vector<int64_t>{d_inner, C / 16}));
        EXPECT_EQ(p["x_proj.weight"].size(0), C / 16 + 32);
        // S4D-real: A = -(1..d_state) in every channel.
        Tensor expected_A = -torch::arange(1, 17, torch::kFloat32).expand({d_inner, 16});
        EXPECT_LT(max_abs_diff(-torch::exp(p["A_log"]), expected_A), 1e-5);
        EXPECT_EQ(b->forward(x, nullptr, ctx).abs().max().item<double>(), 0.0);
        Tensor dt = torch::softplus(p["dt_proj.bias"]);
        EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-5));
        EXPECT_LE(dt.max().item<double>(), 1e-1 * (1 + 1e-5));
    }
}

TEST(Mamba1, ScanEqualsSequentialReference) {
    const int64_t C = 16;
    for (const auto &scan : kMamba1Scans) {
        auto b = double_block(with_scan(kMamba1, scan), C, 31);
        torch::manual_seed(11);
        // Lengths 2..40: chunks of 2 to 7 tokens, padded and not, one chunk and several;
        // one to three segments of the fused op's saved states.
        for (int64_t T : {2, 3, 5, 10, 17, 40}) {
            SCOPED_TRACE(scan + " T " + std::to_string(T));
            Tensor x = torch::randn({2, T, C}, torch::kFloat64);
            Tensor proj = torch::randn({2, T, C}, torch::kFloat64);
            Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
            ForwardContext ctx;
            Tensor y = b->forward(xa, nullptr, ctx);
            Tensor y_ref = mamba1_reference(*b, xb);
            EXPECT_LT(max_abs_diff(y, y_ref), 1e-12);

            b->zero_grad();
            (y * proj).sum().backward();
            std::map<std::string, Tensor> grads;
            for (auto &p : b->named_parameters()) grads[p.key()] = p.value().grad().clone();
            b->zero_grad();
            (y_ref * proj).sum().backward();
            EXPECT_LT(max_abs_diff(xa.grad(), xb.grad()), 1e-12);
            for (auto &p : b->named_parameters())
                EXPECT_LT(max_abs_diff(grads[p.key()], p.value().grad()), 1e-11) << p.key();
        }
    }
}

TEST(Mamba1, FusedEqualsChunkedInFloat32) {
    torch::manual_seed(16);
    std::vector<std::shared_ptr<cdrmix::Block>> forms;
    for (const auto &scan : kMamba1Scans) {
        torch::manual_seed(17);
        forms.push_back(make_block({{"type", "mamba1"}, {"scan", scan}}, BlockContext{32, 0, 1}));
        cdrmix::test::perturb(*forms.back(), 0.1, 18);
    }
    Tensor x = torch::randn({3, 70, 32}).requires_grad_(true);
    ForwardContext ctx;
    Tensor fused = forms[0]->forward(x, nullptr, ctx), chunked = forms[1]->forward(x, nullptr, ctx);
    EXPECT_LT(max_abs_diff(fused, chunked), 1e-5 * chunked.abs().max().item<double>());
    auto gf = torch::autograd::grad({fused.square().sum()}, {x})[0];
    auto gc = torch::autograd::grad({chunked.square().sum()}, {x})[0];
    EXPECT_LT(max_abs_diff(gf, gc), 1e-4 * gc.abs().max().item<double>());
}

TEST(Mamba1, StreamingEqualsParallel) {
    for (const auto &scan : kMamba1Scans) {
        SCOPED_TRACE(scan);
        torch::manual_seed(12);
        auto b = double_block(with_scan(kMamba1, scan), 16, 32);
        Tensor x = torch::randn({2, 21, 16}, torch::kFloat64);
        // Pieces of several lengths (each its own chunking), then single tokens.
        std::vector<int64_t> cuts = {7, 8, 10, 19};
        for (int64_t t : token_cuts(19, 21)) cuts.push_back(t);
        EXPECT_LT(pieces_gap(*b, x, cuts), 1e-10);
        EXPECT_LT(pieces_gap(*b, x, token_cuts(0, 21)), 1e-10);
        EXPECT_LT(pieces_gap(*b, x, {21}), 1e-12);
        // A wide conv, no conv window at all, and a single-step start.
        auto wide = double_block(with_scan({{"type", "mamba1"}, {"d_state", 3}, {"d_conv", 6}}, scan), 8, 33);
        EXPECT_LT(pieces_gap(*wide, x.narrow(-1, 0, 8), {1, 3, 12, 13, 21}), 1e-10);
        auto pointwise = double_block(with_scan({{"type", "mamba1"}, {"d_state", 3}, {"d_conv", 1}}, scan), 8, 34);
        EXPECT_LT(pieces_gap(*pointwise, x.narrow(-1, 0, 8), {1, 2, 9, 21}), 1e-10);
    }
}

TEST(Mamba1, GradientsMatchFiniteDifferences) {
    const Json cfg = {{"type", "mamba1"}, {"d_state", 3}, {"d_conv", 3}, {"expand", 1}, {"dt_rank", 2}};
    for (const auto &scan : kMamba1Scans) {
        SCOPED_TRACE(scan);
        torch::manual_seed(13);
        auto b = double_block(with_scan(cfg, scan), 8, 35);
        // 5 tokens: chunks of 3, the second padded.
        Tensor x = torch::randn({1, 5, 8}, torch::kFloat64).requires_grad_(true);
        Tensor proj = torch::randn({1, 5, 8}, torch::kFloat64);
        auto loss = [&] {
            ForwardContext ctx;
            return (b->forward(x, nullptr, ctx) * proj).sum();
        };
        cdrmix::test::expect_gradient_matches(x, loss, 8, 1e-6, 1e-6);
        for (const auto &p : b->named_parameters()) {
            SCOPED_TRACE(p.key());
            cdrmix::test::expect_gradient_matches(p.value(), loss, 4, 1e-6, 1e-6);
        }
    }
}

TEST(Mamba1, GradientsFlowThroughTheCarriedState) {
    for (const auto &scan : kMamba1Scans) {
        SCOPED_TRACE(scan);
        torch::manual_seed(14);
        auto b = double_block(with_scan(kMamba1, scan), 16, 36);
        Tensor x = torch::randn({2, 9, 16}, torch::kFloat64);
        Tensor proj = torch::randn({2, 9, 16}, torch::kFloat64);
        Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
        ForwardContext ctx;
        (b->forward(xa, nullptr, ctx) * proj).sum().backward();
        cdrmix::BlockState state;
        Tensor first = b->forward(xb.slice(1, 0, 6), &state, ctx);
        Tensor step = b->forward(xb.slice(1, 6, 7), &state, ctx);
        Tensor rest = b->forward(xb.slice(1, 7, 9), &state, ctx);
        (torch::cat({first, step, rest}, 1) * proj).sum().backward();
        EXPECT_LT(max_abs_diff(xa.grad(), xb.grad()), 1e-12);
    }
}

TEST(Mamba1, ConfigErrorsNameTheKey) {
    EXPECT_NE(block_error({{"type", "mamba1"}, {"dt_rank", 0}}).find("key 'dt_rank'"), std::string::npos);
    EXPECT_NE(block_error({{"type", "mamba1"}, {"d_stat", 8}}).find("unknown key 'd_stat'; did you mean 'd_state'?"),
              std::string::npos);
    EXPECT_NE(block_error({{"type", "mamba1"}, {"chunk_size", 8}}).find("unknown key 'chunk_size'"), std::string::npos);
    EXPECT_NE(block_error({{"type", "mamba1"}, {"scan", "fuse"}}).find("key 'scan'"), std::string::npos);
}

// Oxidizr's hybrid layout: Mamba-1 layers, latent attention with an MoE FFN on the last.
TEST(Mamba1, HybridModelWithLatentAttentionAndMoEStreamsAndTrains) {
    const Json spec = {{"vocab_size", 11},
                       {"hidden_size", 16},
                       {"num_layers", 3},
                       {"norm", "rmsnorm"},
                       {"mixer", {{"type", "mla"}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4}}},
                       {"mamba_layers", {0, 1}},
                       {"mamba", kMamba1},
                       {"ffn", {{"type", "swiglu"}}},
                       {"moe_every", 3},
                       {"num_experts", 3},
                       {"top_k", 2},
                       {"expert", {{"type", "swiglu"}}}};
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    auto params = m->named_parameters();
    for (const char *name : {"blocks.0.att.x_proj.weight", "blocks.1.att.dt_proj.bias", "blocks.1.att.A_log",
                             "blocks.2.att.kv_a_proj_with_mqa.weight", "blocks.2.ffn.experts.2.w1.weight"})
        EXPECT_TRUE(params.contains(name)) << name;
    EXPECT_FALSE(params.contains("blocks.2.att.A_log"));
    m->to(torch::kFloat64);
    cdrmix::test::perturb(*m, 0.05, 37);
    torch::manual_seed(15);
    Tensor batch = torch::randint(0, 11, {2, 10}, torch::kInt64);
    auto out = m->loss(batch);
    out.total.backward();
    EXPECT_TRUE(params["blocks.0.att.A_log"].grad().isfinite().all().item<bool>());
    EXPECT_GT(params["blocks.1.att.in_proj.weight"].grad().abs().max().item<double>(), 0.0);

    m->eval();
    torch::NoGradGuard no_grad;
    Tensor tokens = batch.slice(1, 0, 9);
    ForwardContext ctx;
    Tensor whole = m->forward(tokens, nullptr, ctx);
    cdrmix::ModelState state;
    std::vector<Tensor> parts;
    for (auto [s, e] : {std::pair<int64_t, int64_t>{0, 5}, {5, 6}, {6, 7}, {7, 9}}) {
        ForwardContext c;
        parts.push_back(m->forward(tokens.slice(1, s, e), &state, c));
    }
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), whole), 1e-10);
}

const Json kMamba3 = {{"type", "mamba3"}, {"d_state", 6}, {"head_dim", 8}, {"chunk_size", 4}};

// The variants: single input without conv, real state with conv, and MIMO rank 2 with both.
std::vector<Json> mamba3_variants() {
    Json real_conv = kMamba3, mimo = kMamba3;
    real_conv["complex_rope"] = false;
    real_conv["use_conv"] = true;
    real_conv["d_state"] = 5;
    mimo["mimo_rank"] = 2;
    mimo["use_conv"] = true;
    mimo["d_conv"] = 3;
    return {kMamba3, real_conv, mimo};
}

TEST(Mamba3, DefaultsBuildAt64And128WithDocumentedState) {
    torch::manual_seed(20);
    for (int64_t C : {64, 128}) {
        auto b = make_block({{"type", "mamba3"}}, BlockContext{C, 0, 2});
        Tensor x = torch::randn({2, 5, C});
        cdrmix::BlockState state;
        ForwardContext ctx;
        EXPECT_EQ(b->forward(x, &state, ctx).sizes(), x.sizes());
        const int64_t H = 2 * C / 32;
        // {SSM state, previous rotated key, previous input, cumulative angle}: no conv by default.
        ASSERT_EQ(state.size(), 4u);
        EXPECT_EQ(state[0].sizes(), (std::vector<int64_t>{2, H, 32, 64}));
        EXPECT_EQ(state[1].sizes(), (std::vector<int64_t>{2, H, 1, 64}));
        EXPECT_EQ(state[2].sizes(), (std::vector<int64_t>{2, H, 1, 32}));
        EXPECT_EQ(state[3].sizes(), (std::vector<int64_t>{2, H, 32}));
        auto p = b->named_parameters();
        EXPECT_FALSE(p.contains("conv1d.weight"));
        EXPECT_FALSE(p.contains("mimo_x_up"));
        EXPECT_EQ(p["b_bias"].min().item<double>(), 1.0);
        EXPECT_EQ(p["c_bias"].max().item<double>(), 1.0);
        EXPECT_EQ(b->forward(x, nullptr, ctx).abs().max().item<double>(), 0.0);
    }
}

TEST(Mamba3, ScanEqualsSequentialReference) {
    torch::manual_seed(21);
    const int64_t C = 16, T = 11;
    Tensor x = torch::randn({2, T, C}, torch::kFloat64);
    Tensor proj = torch::randn({2, T, C}, torch::kFloat64);
    for (const Json &variant : mamba3_variants()) {
        auto source = double_block(variant, C, 41);
        for (int64_t Q : {1, 3, 4, 64}) {
            SCOPED_TRACE(variant.dump() + " chunk_size " + std::to_string(Q));
            Json cfg = variant;
            cfg["chunk_size"] = Q;
            auto b = make_block(cfg, BlockContext{C, 1, 3});
            b->to(torch::kFloat64);
            {
                torch::NoGradGuard no_grad;
                auto src = source->named_parameters();
                for (auto &p : b->named_parameters()) p.value().copy_(src[p.key()]);
            }
            Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
            ForwardContext ctx;
            Tensor y = b->forward(xa, nullptr, ctx);
            Tensor y_ref = mamba3_reference(*b, xb);
            EXPECT_LT(max_abs_diff(y, y_ref), 1e-12);

            (y * proj).sum().backward();
            std::map<std::string, Tensor> grads;
            for (auto &p : b->named_parameters()) grads[p.key()] = p.value().grad().clone();
            b->zero_grad();
            (y_ref * proj).sum().backward();
            EXPECT_LT(max_abs_diff(xa.grad(), xb.grad()), 1e-12);
            for (auto &p : b->named_parameters())
                EXPECT_LT(max_abs_diff(grads[p.key()], p.value().grad()), 1e-11) << p.key();
        }
    }
}

TEST(Mamba3, StreamingEqualsParallel) {
    torch::manual_seed(22);
    Tensor x = torch::randn({2, 21, 16}, torch::kFloat64);
    std::vector<int64_t> cuts = {7, 8, 10, 19};
    for (int64_t t : token_cuts(19, 21)) cuts.push_back(t);
    for (const Json &variant : mamba3_variants()) {
        SCOPED_TRACE(variant.dump());
        auto b = double_block(variant, 16, 42);
        EXPECT_LT(pieces_gap(*b, x, cuts), 1e-10);
        EXPECT_LT(pieces_gap(*b, x, token_cuts(0, 21)), 1e-10);
        EXPECT_LT(pieces_gap(*b, x, {1, 3, 12, 13, 21}), 1e-10);
    }
}

TEST(Mamba3, GradientsMatchFiniteDifferences) {
    torch::manual_seed(23);
    const Json cfg = {{"type", "mamba3"}, {"d_state", 4}, {"head_dim", 4}, {"chunk_size", 3},
                      {"use_conv", true}, {"d_conv", 2}, {"mimo_rank", 2}};
    auto b = double_block(cfg, 8, 43);
    Tensor x = torch::randn({1, 5, 8}, torch::kFloat64).requires_grad_(true);
    Tensor proj = torch::randn({1, 5, 8}, torch::kFloat64);
    auto loss = [&] {
        ForwardContext ctx;
        return (b->forward(x, nullptr, ctx) * proj).sum();
    };
    cdrmix::test::expect_gradient_matches(x, loss, 8, 1e-6, 1e-6);
    for (const auto &p : b->named_parameters()) {
        SCOPED_TRACE(p.key());
        cdrmix::test::expect_gradient_matches(p.value(), loss, 4, 1e-6, 1e-6);
    }
}

TEST(Mamba3, GradientsFlowThroughTheCarriedState) {
    torch::manual_seed(24);
    auto b = double_block(mamba3_variants()[2], 16, 44);
    Tensor x = torch::randn({2, 9, 16}, torch::kFloat64);
    Tensor proj = torch::randn({2, 9, 16}, torch::kFloat64);
    Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
    ForwardContext ctx;
    (b->forward(xa, nullptr, ctx) * proj).sum().backward();
    cdrmix::BlockState state;
    Tensor first = b->forward(xb.slice(1, 0, 6), &state, ctx);
    Tensor step = b->forward(xb.slice(1, 6, 7), &state, ctx);
    Tensor rest = b->forward(xb.slice(1, 7, 9), &state, ctx);
    (torch::cat({first, step, rest}, 1) * proj).sum().backward();
    EXPECT_LT(max_abs_diff(xa.grad(), xb.grad()), 1e-12);
}

TEST(Mamba3, ConfigErrorsNameTheKey) {
    EXPECT_NE(block_error({{"type", "mamba3"}, {"d_state", 7}}).find("key 'd_state' must be even with complex_rope"),
              std::string::npos);
    EXPECT_EQ(block_error({{"type", "mamba3"}, {"d_state", 7}, {"complex_rope", false}}), "(no error)");
    EXPECT_NE(block_error({{"type", "mamba3"}, {"head_dim", 48}}).find("must be a multiple of head_dim 48"),
              std::string::npos);
    EXPECT_NE(block_error({{"type", "mamba3"}, {"mimo_rnak", 2}}).find("did you mean 'mimo_rank'?"), std::string::npos);
}

TEST(Mamba3, HybridModelStreams) {
    Json mamba = kMamba3;
    mamba["mimo_rank"] = 2;
    const Json spec = {{"vocab_size", 11},     {"hidden_size", 16},      {"num_layers", 2},
                       {"mixer", {{"type", "attention"}}}, {"mamba_layers", {0}}, {"mamba", mamba},
                       {"ffn", {{"type", "swiglu"}}}};
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    EXPECT_TRUE(m->named_parameters().contains("blocks.0.att.mimo_x_down"));
    m->to(torch::kFloat64);
    cdrmix::test::perturb(*m, 0.05, 45);
    m->eval();
    torch::NoGradGuard no_grad;
    torch::manual_seed(25);
    Tensor tokens = torch::randint(0, 11, {2, 9}, torch::kInt64);
    ForwardContext ctx;
    Tensor whole = m->forward(tokens, nullptr, ctx);
    cdrmix::ModelState state;
    std::vector<Tensor> parts;
    for (auto [s, e] : {std::pair<int64_t, int64_t>{0, 5}, {5, 6}, {6, 9}}) {
        ForwardContext c;
        parts.push_back(m->forward(tokens.slice(1, s, e), &state, c));
    }
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), whole), 1e-10);
}

TEST(Ffn, DefaultsBuildAt64And128) {
    for (int64_t C : {64, 128}) {
        auto swiglu = make_block({{"type", "swiglu"}}, BlockContext{C, 0, 2});
        auto relu2 = make_block({{"type", "relu2"}}, BlockContext{C, 0, 2});
        EXPECT_TRUE(swiglu->tokenwise());
        EXPECT_TRUE(relu2->tokenwise());
        // round(8/3 C) up to a multiple of 8; 4 C.
        EXPECT_EQ(swiglu->named_parameters()["w1.weight"].size(0), C == 64 ? 176 : 344);
        EXPECT_EQ(relu2->named_parameters()["key.weight"].size(0), 4 * C);
        Tensor x = torch::randn({2, 3, C});
        ForwardContext ctx;
        // Zero output projections: residual stacks start as the identity.
        EXPECT_EQ(swiglu->forward(x, nullptr, ctx).abs().max().item<double>(), 0.0);
        EXPECT_EQ(relu2->forward(x, nullptr, ctx).abs().max().item<double>(), 0.0);
    }
}

TEST(Ffn, MatchFormulasTokenwiseAndStateless) {
    torch::manual_seed(5);
    Tensor x = torch::randn({2, 7, 16}, torch::kFloat64);
    auto swiglu = double_block({{"type", "swiglu"}, {"expansion", 3}}, 16, 26);
    auto relu2 = double_block({{"type", "relu2"}, {"expansion", 2}}, 16, 27);
    auto sp = swiglu->named_parameters();
    auto rp = relu2->named_parameters();
    Tensor swiglu_ref = (torch::silu(x.matmul(sp["w1.weight"].t())) * x.matmul(sp["w3.weight"].t()))
                            .matmul(sp["w2.weight"].t());
    Tensor relu2_ref = torch::relu(x.matmul(rp["key.weight"].t())).square().matmul(rp["value.weight"].t());
    EXPECT_EQ(sp["w1.weight"].size(0), 48);
    EXPECT_EQ(rp["key.weight"].size(0), 32);
    for (auto [block, ref] : {std::pair{swiglu, swiglu_ref}, std::pair{relu2, relu2_ref}}) {
        ForwardContext ctx;
        Tensor y = block->forward(x, nullptr, ctx);
        EXPECT_LT(max_abs_diff(y, ref), 1e-12);
        EXPECT_LT(max_abs_diff(block->forward_tokens(x.reshape({-1, 16})).view({2, 7, 16}), y), 1e-12);
        EXPECT_LT(pieces_gap(*block, x, {3, 4, 7}), 1e-12);
        cdrmix::BlockState state;
        block->forward(x, &state, ctx);
        EXPECT_TRUE(state.empty());
    }
}

TEST(Ffn, GradientsMatchFiniteDifferences) {
    torch::manual_seed(6);
    for (const Json &cfg : {Json{{"type", "swiglu"}, {"expansion", 2}}, Json{{"type", "relu2"}, {"expansion", 2}}}) {
        SCOPED_TRACE(cfg.dump());
        auto b = double_block(cfg, 8, 28);
        Tensor x = torch::randn({1, 4, 8}, torch::kFloat64).requires_grad_(true);
        Tensor proj = torch::randn({1, 4, 8}, torch::kFloat64);
        auto loss = [&] {
            ForwardContext ctx;
            return (b->forward(x, nullptr, ctx) * proj).sum();
        };
        cdrmix::test::expect_gradient_matches(x, loss, 6, 1e-6, 1e-6);
        for (const auto &p : b->named_parameters()) {
            SCOPED_TRACE(p.key());
            cdrmix::test::expect_gradient_matches(p.value(), loss, 4, 1e-6, 1e-6);
        }
    }
}

TEST(Ffn, WorkAsMoEExperts) {
    torch::manual_seed(7);
    for (const char *type : {"swiglu", "relu2"}) {
        SCOPED_TRACE(type);
        auto moe = double_block({{"type", "moe"}, {"num_experts", 4}, {"expert", {{"type", type}}}}, 16, 29);
        Tensor x = torch::randn({2, 5, 16}, torch::kFloat64).requires_grad_(true);
        ForwardContext ctx;
        ctx.record_routing = true;
        Tensor y = moe->forward(x, nullptr, ctx);
        EXPECT_EQ(y.sizes(), x.sizes());
        (y.square().sum()).backward();
        EXPECT_TRUE(x.grad().isfinite().all().item<bool>());
        EXPECT_GT(x.grad().abs().max().item<double>(), 0.0);
        // Every expert that received tokens has finite gradients on all its weights.
        const auto stats = cdrmix::compute_router_stats(ctx.routing);
        ASSERT_EQ(stats.size(), 1u);
        const auto &load = stats[0].tokens_per_expert;
        int64_t expert_params = 0;
        for (const auto &p : moe->named_parameters()) {
            if (p.key().rfind("experts.", 0) != 0) continue;
            ++expert_params;
            const auto e = static_cast<size_t>(std::stoi(p.key().substr(8)));
            if (load[e] == 0) continue;
            ASSERT_TRUE(p.value().grad().defined()) << p.key();
            EXPECT_TRUE(p.value().grad().isfinite().all().item<bool>()) << p.key();
            EXPECT_GT(p.value().grad().abs().max().item<double>(), 0.0) << p.key();
        }
        EXPECT_EQ(expert_params, std::string(type) == "swiglu" ? 12 : 8);
    }
}
