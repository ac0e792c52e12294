// Every WKV head-kernel set this CPU runs (AVX-512, AVX2, baseline x86-64),
// called directly, against the per-token references: forward outputs, final
// state and all gradients, in float32 and float64, at head size 64 (the
// unrolled instantiation) and 23 (the generic one: a scalar tail for
// every vector width and an odd row left after the pairs), for the recurrent
// kernels and each set's chunked WKV-7. The ops themselves use only the fastest set.
#include "test_util.hpp"

#include "sdk/ops/wkv7_chunked.hpp"
#include "sdk/ops/wkv_head_kernels.hpp"

#include <cdrmix/ops.hpp>

using cdrmix::test::max_abs_diff;
using torch::Tensor;
namespace kn = cdrmix::ops::cpu::kernels;

namespace {

constexpr int64_t kB = 2, kT = 37, kH = 2, kChunk = 16; // T not a multiple of the chunk

struct Case {
    bool v7;
    int64_t N;
    torch::ScalarType dtype;
    bool chunked = false; // WKV-7 only
};

std::string name_of(const kn::KernelSet &set, const Case &c) {
    return std::string(set.isa) + (c.v7 ? c.chunked ? " wkv7 chunked" : " wkv7" : " wkv6") + " N=" +
           std::to_string(c.N) + (c.dtype == torch::kFloat64 ? " f64" : " f32");
}

// r, w, k, v, then a, b (RWKV-7) or u (RWKV-6), shaped like the blocks make them.
std::vector<Tensor> make_inputs(const Case &c) {
    torch::manual_seed(c.N * 7 + c.v7);
    auto o = torch::TensorOptions().dtype(torch::kFloat64);
    auto rn = [&] { return torch::randn({kB, kT, kH, c.N}, o); };
    if (c.v7) {
        Tensor kappa = torch::nn::functional::normalize(rn(), torch::nn::functional::NormalizeFuncOptions().dim(-1));
        return {rn() * 0.5, torch::exp(-std::exp(-0.5) * torch::sigmoid(rn())), rn() * 0.5, rn(), -kappa,
                kappa * torch::sigmoid(rn())};
    }
    return {rn() * 0.5, torch::exp(-torch::exp(rn() * 0.5 - 1.0)), rn() * 0.5, rn(), torch::randn({kH, c.N}, o) * 0.5};
}

struct Result {
    Tensor y, s_final;
    std::vector<Tensor> grads; // inputs in order, then the initial state
};

// The reference in float64 with autograd.
Result reference(const Case &c, std::vector<Tensor> x, Tensor s0, const Tensor &gy, const Tensor &gs) {
    for (auto &t : x) t.requires_grad_(true);
    s0.requires_grad_(true);
    auto [y, s] = c.v7 ? cdrmix::ops::wkv7_reference(x[0], x[1], x[2], x[3], x[4], x[5], s0)
                       : cdrmix::ops::wkv6_reference(x[0], x[1], x[2], x[3], x[4], s0);
    ((y * gy).sum() + (s * gs).sum()).backward();
    Result out{y.detach(), s.detach(), {}};
    for (auto &t : x) out.grads.push_back(t.grad());
    out.grads.push_back(s0.grad());
    return out;
}

template <class T>
Result run_set(const kn::WkvKernels<T> &kern, const Case &c, const std::vector<Tensor> &x64, const Tensor &s0_64,
               const Tensor &gy64, const Tensor &gs64) {
    auto cv = [&](const Tensor &t) { return t.to(c.dtype).contiguous(); };
    std::vector<Tensor> x;
    for (const auto &t : x64) x.push_back(cv(t));
    const Tensor dy = cv(gy64);
    const int64_t N = c.N, NN = N * N, NC = (kT + kChunk - 1) / kChunk, stride = kH * N;
    Tensor y = torch::empty_like(x[0]), S = cv(s0_64).clone(), chunks = torch::empty({kB, kH, NC, N, N}, c.dtype);
    Tensor dS = cv(gs64).clone();
    std::vector<Tensor> g;
    for (const auto &t : x) g.push_back(torch::zeros_like(t));
    std::vector<Tensor> du_bh;
    namespace ch = cdrmix::ops::cpu::chunked;
    const int64_t work_size = c.chunked ? ch::wkv7_backward_workspace(N, kChunk)
                              : c.v7    ? kn::wkv7_backward_workspace(N, kChunk)
                                        : kn::wkv6_backward_workspace(N, kChunk);
    std::vector<T> work(work_size);
    auto p = [](const Tensor &t) { return t.data_ptr<T>(); };
    for (int64_t b = 0; b < kB; ++b)
        for (int64_t h = 0; h < kH; ++h) {
            const int64_t off = (b * kT * kH + h) * N, bh = b * kH + h;
            T *Sp = p(S) + bh * NN, *cp = p(chunks) + bh * NC * NN, *dSp = p(dS) + bh * NN;
            if (c.v7) {
                const kn::Wkv7Head<T> in{p(x[0]) + off, p(x[1]) + off, p(x[2]) + off, p(x[3]) + off,
                                         p(x[4]) + off, p(x[5]) + off, kT, stride, N};
                const kn::Wkv7Grads<T> gr{p(g[0]) + off, p(g[1]) + off, p(g[2]) + off,
                                          p(g[3]) + off, p(g[4]) + off, p(g[5]) + off};
                if (c.chunked) {
                    kern.wkv7_chunked_forward(kern, in, Sp, p(y) + off, cp, kChunk, work.data());
                    kern.wkv7_chunked_backward(kern, in, cp, kChunk, p(dy) + off, dSp, gr, work.data());
                } else {
                    kern.wkv7_forward(in, Sp, p(y) + off, cp, kChunk);
                    kern.wkv7_backward(in, cp, kChunk, p(dy) + off, dSp, gr, work.data());
                }
            } else {
                const kn::Wkv6Head<T> in{p(x[0]) + off, p(x[1]) + off, p(x[2]) + off, p(x[3]) + off,
                                         p(x[4]) + h * N, kT, stride, N};
                kern.wkv6_forward(in, Sp, p(y) + off, cp, kChunk);
                Tensor du = torch::empty({N}, c.dtype);
                const kn::Wkv6Grads<T> gr{p(g[0]) + off, p(g[1]) + off, p(g[2]) + off, p(g[3]) + off, p(du)};
                kern.wkv6_backward(in, cp, kChunk, p(dy) + off, dSp, gr, work.data());
                g[4][h] += du;
            }
        }
    g.push_back(dS);
    return {y, S, g};
}

void expect_close(const Result &got, const Result &ref, const std::string &what, double tol) {
    auto rel = [](const Tensor &a, const Tensor &b) {
        return max_abs_diff(a.to(torch::kFloat64), b) / std::max(1e-12, b.abs().max().item<double>());
    };
    EXPECT_LT(rel(got.y, ref.y), tol) << what << ": y";
    EXPECT_LT(rel(got.s_final, ref.s_final), tol) << what << ": final state";
    ASSERT_EQ(got.grads.size(), ref.grads.size());
    for (size_t i = 0; i < got.grads.size(); ++i)
        EXPECT_LT(rel(got.grads[i], ref.grads[i]), tol) << what << ": gradient of input " << i;
}

} // namespace

TEST(WKVKernelSets, EveryAvailableSetMatchesTheReference) {
    const kn::KernelSet *sets[3];
    const int n = kn::available_kernel_sets(sets);
    ASSERT_GE(n, 1);
    EXPECT_STREQ(sets[n - 1]->isa, "baseline");
    for (int i = 0; i < n; ++i)
        for (auto [v7, chunked] : {std::pair{true, false}, std::pair{true, true}, std::pair{false, false}})
            for (int64_t N : {64, 23})
                for (auto dt : {torch::kFloat32, torch::kFloat64}) {
                    const Case c{v7, N, dt, chunked};
                    auto x = make_inputs(c);
                    torch::manual_seed(99);
                    Tensor s0 = torch::randn({kB, kH, N, N}, torch::kFloat64) * 0.1;
                    Tensor gy = torch::randn({kB, kT, kH, N}, torch::kFloat64);
                    Tensor gs = torch::randn({kB, kH, N, N}, torch::kFloat64);
                    const Result ref = reference(c, x, s0, gy, gs);
                    const Result got = dt == torch::kFloat64 ? run_set(sets[i]->f64, c, x, s0, gy, gs)
                                                             : run_set(sets[i]->f32, c, x, s0, gy, gs);
                    expect_close(got, ref, name_of(*sets[i], c), dt == torch::kFloat64 ? 1e-10 : 2e-4);
                }
}

TEST(WKVKernelSets, Bfloat16InputsAreWidenedAndAgree) {
    // bf16 activations (under autocast) run the float32 kernels; outputs come back in bf16.
    const Case c{true, 64, torch::kFloat32};
    auto x = make_inputs(c);
    std::vector<Tensor> xb;
    for (const auto &t : x) xb.push_back(t.to(torch::kBFloat16));
    auto [y, s] = cdrmix::ops::wkv7(xb[0], xb[1], xb[2], xb[3], xb[4], xb[5], Tensor());
    std::vector<Tensor> x32;
    for (const auto &t : xb) x32.push_back(t.to(torch::kFloat32));
    auto [y_ref, s_ref] = cdrmix::ops::wkv7_reference(x32[0], x32[1], x32[2], x32[3], x32[4], x32[5], Tensor());
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    EXPECT_LT(max_abs_diff(y.to(torch::kFloat32), y_ref) / y_ref.abs().max().item<double>(), 1e-2);
    EXPECT_LT(max_abs_diff(s, s_ref) / s_ref.abs().max().item<double>(), 1e-4);
}
