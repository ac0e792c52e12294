// The fused WKV-6 op against the per-token reference: forward, gradients of
// every input (including the bonus u and the initial state), finite
// differences, float32 accuracy and streaming.
#include "test_util.hpp"

#include <cdrmix/ops.hpp>

using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

struct Inputs {
    Tensor r, w, k, v, u, s0;
    std::vector<Tensor> all() const { return {r, w, k, v, u, s0}; }
};

// Inputs shaped like the time-mix block makes them: decay exp(-exp(w_raw)) in (0,1).
Inputs make_inputs(int64_t B, int64_t T, int64_t H, int64_t N, torch::ScalarType dt, uint64_t seed, bool grad) {
    torch::manual_seed(seed);
    auto o = torch::TensorOptions().dtype(dt);
    Inputs in;
    in.r = torch::randn({B, T, H, N}, o) * 0.5;
    in.k = torch::randn({B, T, H, N}, o) * 0.5;
    in.v = torch::randn({B, T, H, N}, o);
    in.w = torch::exp(-torch::exp(torch::randn({B, T, H, N}, o) - 1.0));
    in.u = torch::randn({H, N}, o) * 0.5;
    in.s0 = torch::randn({B, H, N, N}, o.dtype(dt == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32)) * 0.1;
    if (grad)
        for (Tensor *t : {&in.r, &in.w, &in.k, &in.v, &in.u, &in.s0}) t->set_requires_grad(true);
    return in;
}

} // namespace

TEST(WKV6, ForwardMatchesReference) {
    // T = 37 is not a multiple of the 16-step checkpoint chunk.
    Inputs in = make_inputs(2, 37, 3, 8, torch::kFloat64, 1, false);
    auto [y, s] = cdrmix::ops::wkv6(in.r, in.w, in.k, in.v, in.u, in.s0);
    auto [y_ref, s_ref] = cdrmix::ops::wkv6_reference(in.r, in.w, in.k, in.v, in.u, in.s0);
    EXPECT_LT(max_abs_diff(y, y_ref), 1e-11);
    EXPECT_LT(max_abs_diff(s, s_ref), 1e-11);
}

TEST(WKV6, ReadoutUsesPreviousStateAndBonus) {
    // One step from a zero state: y = (r . (u * k)) v, S = k v^T (rows: key index).
    Inputs in = make_inputs(1, 1, 1, 4, torch::kFloat64, 9, false);
    auto [y, s] = cdrmix::ops::wkv6(in.r, in.w, in.k, in.v, in.u, Tensor());
    Tensor r = in.r.view({4}), k = in.k.view({4}), v = in.v.view({4});
    EXPECT_LT(max_abs_diff(y.view({4}), (r * in.u.view({4}) * k).sum() * v), 1e-14);
    EXPECT_LT(max_abs_diff(s.view({4, 4}), torch::outer(k, v)), 1e-14);
}

TEST(WKV6, GradientsMatchReference) {
    Inputs in = make_inputs(2, 37, 2, 8, torch::kFloat64, 2, true);
    torch::manual_seed(3);
    Tensor gy = torch::randn({2, 37, 2, 8}, torch::kFloat64), gs = torch::randn({2, 2, 8, 8}, torch::kFloat64);
    auto grads_of = [&](bool fused) {
        for (auto t : in.all())
            if (t.grad().defined()) t.mutable_grad().zero_();
        auto [y, s] = fused ? cdrmix::ops::wkv6(in.r, in.w, in.k, in.v, in.u, in.s0)
                            : cdrmix::ops::wkv6_reference(in.r, in.w, in.k, in.v, in.u, in.s0);
        ((y * gy).sum() + (s * gs).sum()).backward();
        std::vector<Tensor> g;
        for (auto t : in.all()) g.push_back(t.grad().clone());
        return g;
    };
    auto fused = grads_of(true), ref = grads_of(false);
    const char *names[] = {"r", "w", "k", "v", "u", "s0"};
    for (size_t i = 0; i < fused.size(); ++i)
        EXPECT_LT(max_abs_diff(fused[i], ref[i]), 1e-10) << "gradient of " << names[i];
}

TEST(WKV6, GradientOfOutputAloneMatchesReference) {
    // Only y is used: the final-state gradient reaches backward undefined.
    Inputs in = make_inputs(1, 20, 2, 4, torch::kFloat64, 10, true);
    auto [y, s] = cdrmix::ops::wkv6(in.r, in.w, in.k, in.v, in.u, in.s0);
    auto g = torch::autograd::grad({y.square().sum()}, in.all());
    auto [y_ref, s_ref] = cdrmix::ops::wkv6_reference(in.r, in.w, in.k, in.v, in.u, in.s0);
    auto g_ref = torch::autograd::grad({y_ref.square().sum()}, in.all());
    for (size_t i = 0; i < g.size(); ++i) EXPECT_LT(max_abs_diff(g[i], g_ref[i]), 1e-10) << "input " << i;
}

TEST(WKV6, FiniteDifferences) {
    Inputs in = make_inputs(1, 5, 1, 4, torch::kFloat64, 4, true);
    torch::manual_seed(5);
    Tensor gy = torch::randn({1, 5, 1, 4}, torch::kFloat64);
    auto loss = [&] {
        auto [y, s] = cdrmix::ops::wkv6(in.r, in.w, in.k, in.v, in.u, in.s0);
        return (y * gy).sum() + s.pow(2).sum();
    };
    for (auto t : in.all()) cdrmix::test::expect_gradient_matches(t, loss, 6, 1e-6, 1e-6);
}

TEST(WKV6, Float32AgreesWithFloat64Reference) {
    Inputs in64 = make_inputs(2, 64, 2, 64, torch::kFloat64, 6, false);
    auto [y_ref, s_ref] = cdrmix::ops::wkv6_reference(in64.r, in64.w, in64.k, in64.v, in64.u, in64.s0);
    auto f = [](const Tensor &t) { return t.to(torch::kFloat32); };
    auto [y, s] = cdrmix::ops::wkv6(f(in64.r), f(in64.w), f(in64.k), f(in64.v), f(in64.u), f(in64.s0));
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_EQ(s.scalar_type(), torch::kFloat32);
    EXPECT_LT(max_abs_diff(y, y_ref) / y_ref.abs().max().item<double>(), 1e-4);
    EXPECT_LT(max_abs_diff(s, s_ref) / s_ref.abs().max().item<double>(), 1e-4);
}

TEST(WKV6, StreamingEqualsWholeSequence) {
    Inputs in = make_inputs(2, 40, 2, 8, torch::kFloat64, 7, false);
    auto [y, s] = cdrmix::ops::wkv6(in.r, in.w, in.k, in.v, in.u, in.s0);
    auto part = [&](const Tensor &t, int64_t a, int64_t b) { return t.slice(1, a, b); };
    auto [y1, s1] = cdrmix::ops::wkv6(part(in.r, 0, 23), part(in.w, 0, 23), part(in.k, 0, 23), part(in.v, 0, 23),
                                      in.u, in.s0);
    Tensor state = s1;
    std::vector<Tensor> ys{y1};
    for (int64_t t = 23; t < 40; ++t) { // then token by token
        auto [yt, st] = cdrmix::ops::wkv6(part(in.r, t, t + 1), part(in.w, t, t + 1), part(in.k, t, t + 1),
                                          part(in.v, t, t + 1), in.u, state);
        ys.push_back(yt);
        state = st;
    }
    EXPECT_LT(max_abs_diff(torch::cat(ys, 1), y), 1e-12);
    EXPECT_LT(max_abs_diff(state, s), 1e-12);
}

TEST(WKV6, RejectsMismatchedShapes) {
    Inputs in = make_inputs(1, 4, 2, 4, torch::kFloat32, 8, false);
    EXPECT_THROW(cdrmix::ops::wkv6(in.r, in.w.slice(1, 0, 2), in.k, in.v, in.u, in.s0), c10::Error);
    EXPECT_THROW(cdrmix::ops::wkv6(in.r, in.w, in.k, in.v, in.u.slice(0, 0, 1), in.s0), c10::Error);
}
