// The fused WKV-7 op against the per-token reference: forward, gradients of
// every input (including the initial state), finite differences, and streaming.
#include "test_util.hpp"

#include <cdrmix/ops.hpp>

using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

struct Inputs {
    Tensor r, w, k, v, a, b, s0;
    std::vector<Tensor> all() const { return {r, w, k, v, a, b, s0}; }
};

// Inputs shaped like the time-mix block makes them: decay in (0.545, 1),
// a = -kappa, b = kappa * lr with kappa unit-norm per head.
Inputs make_inputs(int64_t B, int64_t T, int64_t H, int64_t N, torch::ScalarType dt, uint64_t seed, bool grad) {
    torch::manual_seed(seed);
    auto o = torch::TensorOptions().dtype(dt);
    Inputs in;
    in.r = torch::randn({B, T, H, N}, o) * 0.5;
    in.k = torch::randn({B, T, H, N}, o) * 0.5;
    in.v = torch::randn({B, T, H, N}, o);
    in.w = torch::exp(-std::exp(-0.5) * torch::sigmoid(torch::randn({B, T, H, N}, o)));
    Tensor kappa = torch::nn::functional::normalize(torch::randn({B, T, H, N}, o),
                                                    torch::nn::functional::NormalizeFuncOptions().dim(-1));
    in.a = -kappa;
    in.b = kappa * torch::sigmoid(torch::randn({B, T, H, N}, o));
    in.s0 = torch::randn({B, H, N, N}, o.dtype(dt == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32)) * 0.1;
    if (grad)
        for (Tensor *t : {&in.r, &in.w, &in.k, &in.v, &in.a, &in.b, &in.s0}) t->set_requires_grad(true);
    return in;
}

} // namespace

TEST(WKV7, ForwardMatchesReference) {
    // T = 37 is not a multiple of the 16-step checkpoint chunk.
    Inputs in = make_inputs(2, 37, 3, 8, torch::kFloat64, 1, false);
    auto [y, s] = cdrmix::ops::wkv7(in.r, in.w, in.k, in.v, in.a, in.b, in.s0);
    auto [y_ref, s_ref] = cdrmix::ops::wkv7_reference(in.r, in.w, in.k, in.v, in.a, in.b, in.s0);
    EXPECT_LT(max_abs_diff(y, y_ref), 1e-11);
    EXPECT_LT(max_abs_diff(s, s_ref), 1e-11);
}

TEST(WKV7, GradientsMatchReference) {
    Inputs in = make_inputs(2, 37, 2, 8, torch::kFloat64, 2, true);
    torch::manual_seed(3);
    Tensor gy = torch::randn({2, 37, 2, 8}, torch::kFloat64), gs = torch::randn({2, 2, 8, 8}, torch::kFloat64);
    auto grads_of = [&](bool fused) {
        for (auto t : in.all())
            if (t.grad().defined()) t.mutable_grad().zero_();
        auto [y, s] = fused ? cdrmix::ops::wkv7(in.r, in.w, in.k, in.v, in.a, in.b, in.s0)
                            : cdrmix::ops::wkv7_reference(in.r, in.w, in.k, in.v, in.a, in.b, in.s0);
        ((y * gy).sum() + (s * gs).sum()).backward();
        std::vector<Tensor> g;
        for (auto t : in.all()) g.push_back(t.grad().clone());
        return g;
    };
    auto fused = grads_of(true), ref = grads_of(false);
    const char *names[] = {"r", "w", "k", "v", "a", "b", "s0"};
    for (size_t i = 0; i < fused.size(); ++i)
        EXPECT_LT(max_abs_diff(fused[i], ref[i]), 1e-10) << "gradient of " << names[i];
}

TEST(WKV7, FiniteDifferences) {
    Inputs in = make_inputs(1, 5, 1, 4, torch::kFloat64, 4, true);
    torch::manual_seed(5);
    Tensor gy = torch::randn({1, 5, 1, 4}, torch::kFloat64);
    auto loss = [&] {
        auto [y, s] = cdrmix::ops::wkv7(in.r, in.w, in.k, in.v, in.a, in.b, in.s0);
        return (y * gy).sum() + s.pow(2).sum();
    };
    for (auto t : in.all()) cdrmix::test::expect_gradient_matches(t, loss, 6, 1e-6, 1e-6);
}

TEST(WKV7, Float32AgreesWithFloat64Reference) {
    Inputs in64 = make_inputs(2, 64, 2, 64, torch::kFloat64, 6, false);
    auto [y_ref, s_ref] = cdrmix::ops::wkv7_reference(in64.r, in64.w, in64.k, in64.v, in64.a, in64.b, in64.s0);
    auto f = [](const Tensor &t) { return t.to(torch::kFloat32); };
    auto [y, s] = cdrmix::ops::wkv7(f(in64.r), f(in64.w), f(in64.k), f(in64.v), f(in64.a), f(in64.b), f(in64.s0));
    const double scale = y_ref.abs().max().item<double>();
    EXPECT_LT(max_abs_diff(y, y_ref) / scale, 1e-4);
}

TEST(WKV7, StreamingEqualsWholeSequence) {
    Inputs in = make_inputs(2, 40, 2, 8, torch::kFloat64, 7, false);
    auto [y, s] = cdrmix::ops::wkv7(in.r, in.w, in.k, in.v, in.a, in.b, in.s0);
    auto part = [&](const Tensor &t, int64_t a, int64_t b) { return t.slice(1, a, b); };
    auto [y1, s1] = cdrmix::ops::wkv7(part(in.r, 0, 23), part(in.w, 0, 23), part(in.k, 0, 23), part(in.v, 0, 23),
                                      part(in.a, 0, 23), part(in.b, 0, 23), in.s0);
    Tensor state = s1;
    std::vector<Tensor> ys{y1};
    for (int64_t t = 23; t < 40; ++t) { // then token by token
        auto [yt, st] = cdrmix::ops::wkv7(part(in.r, t, t + 1), part(in.w, t, t + 1), part(in.k, t, t + 1),
                                          part(in.v, t, t + 1), part(in.a, t, t + 1), part(in.b, t, t + 1), state);
        ys.push_back(yt);
        state = st;
    }
    EXPECT_LT(max_abs_diff(torch::cat(ys, 1), y), 1e-12);
    EXPECT_LT(max_abs_diff(state, s), 1e-12);
}

TEST(WKV7, RejectsMismatchedShapes) {
    Inputs in = make_inputs(1, 4, 1, 4, torch::kFloat32, 8, false);
    EXPECT_THROW(cdrmix::ops::wkv7(in.r, in.w.slice(1, 0, 2), in.k, in.v, in.a, in.b, in.s0), c10::Error);
}
