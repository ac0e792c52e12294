// The GPU kernels of the cdrmix:: ops against the CPU kernels (themselves
// checked against the per-token references): forward outputs and every
// gradient, at several sizes and head sizes, in float32 and bfloat16.
// Skipped, with the reason, where no CUDA device is usable.
#include <cdrmix/ops.hpp>

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

namespace {

using torch::Tensor;

#define REQUIRE_CUDA()                                                                                         \
    if (!torch::cuda::is_available())                                                                         \
    GTEST_SKIP() << "no CUDA device (or a LibTorch without CUDA): the GPU kernels are checked by scripts/gpu-check.sh"

struct Shape {
    int64_t B, T, H, N;
};

const Shape kShapes[] = {{2, 37, 2, 16}, {1, 100, 3, 32}, {2, 70, 2, 64}, {1, 1, 1, 64}};

// Inputs as the blocks produce them (decays: RWKV-7 in (0.545, 1); RWKV-6 exp(-exp(.))).
std::vector<Tensor> inputs(bool v7, const Shape &s) {
    auto rn = [&] { return torch::randn({s.B, s.T, s.H, s.N}, torch::kFloat64); };
    if (v7) {
        auto kappa = torch::nn::functional::normalize(rn(), torch::nn::functional::NormalizeFuncOptions().dim(-1));
        return {rn() * 0.5, torch::exp(-std::exp(-0.5) * torch::sigmoid(rn())), rn() * 0.5, rn(), -kappa,
                kappa * torch::sigmoid(rn())};
    }
    return {rn() * 0.5, torch::exp(-torch::exp(rn() * 0.5 - 1.0)), rn() * 0.5, rn(),
            torch::randn({s.H, s.N}, torch::kFloat64) * 0.5};
}

std::tuple<Tensor, Tensor> run_op(bool v7, const std::vector<Tensor> &x, const Tensor &s0) {
    if (v7) return cdrmix::ops::wkv7(x[0], x[1], x[2], x[3], x[4], x[5], s0);
    return cdrmix::ops::wkv6(x[0], x[1], x[2], x[3], x[4], s0);
}

struct Result {
    Tensor y, s;
    std::vector<Tensor> grads; // inputs..., s0
};

// Runs the op on `device` in `dtype` (state float32, or float64 on the CPU
// oracle) and backpropagates the fixed cotangents gy, gs.
Result evaluate(bool v7, const std::vector<Tensor> &x64, const Tensor &s064, const Tensor &gy, const Tensor &gs,
                const c10::Device &device, torch::ScalarType dtype) {
    std::vector<Tensor> x;
    for (const auto &t : x64) x.push_back(t.to(device, dtype).detach().requires_grad_(true));
    const auto state_type = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    Tensor s0 = s064.to(device, state_type).detach().requires_grad_(true);
    auto [y, s] = run_op(v7, x, s0);
    ((y.to(torch::kFloat64) * gy.to(device)).sum() + (s.to(torch::kFloat64) * gs.to(device)).sum()).backward();
    Result r{y.detach().to(torch::kCPU, torch::kFloat64), s.detach().to(torch::kCPU, torch::kFloat64), {}};
    for (const auto &t : x) r.grads.push_back(t.grad().to(torch::kCPU, torch::kFloat64));
    r.grads.push_back(s0.grad().to(torch::kCPU, torch::kFloat64));
    return r;
}

// Largest error relative to the oracle's largest magnitude.
double rel_err(const Tensor &got, const Tensor &want) {
    return (got - want).abs().max().item<double>() / std::max(1e-12, want.abs().max().item<double>());
}

void compare(bool v7, torch::ScalarType dtype, double tol) {
    torch::manual_seed(7);
    const char *names7[] = {"dr", "dw", "dk", "dv", "da", "db", "ds0"};
    const char *names6[] = {"dr", "dw", "dk", "dv", "du", "ds0"};
    for (const Shape &s : kShapes) {
        SCOPED_TRACE("B" + std::to_string(s.B) + " T" + std::to_string(s.T) + " H" + std::to_string(s.H) + " N" +
                     std::to_string(s.N));
        auto x = inputs(v7, s);
        Tensor s0 = torch::randn({s.B, s.H, s.N, s.N}, torch::kFloat64) * 0.1;
        Tensor gy = torch::randn({s.B, s.T, s.H, s.N}, torch::kFloat64);
        Tensor gs = torch::randn({s.B, s.H, s.N, s.N}, torch::kFloat64);
        Result want = evaluate(v7, x, s0, gy, gs, torch::kCPU, torch::kFloat64);
        Result got = evaluate(v7, x, s0, gy, gs, torch::Device(torch::kCUDA, 0), dtype);
        EXPECT_LT(rel_err(got.y, want.y), tol) << "y";
        EXPECT_LT(rel_err(got.s, want.s), tol) << "final state";
        for (size_t i = 0; i < want.grads.size(); ++i)
            EXPECT_LT(rel_err(got.grads[i], want.grads[i]), tol) << (v7 ? names7[i] : names6[i]);
    }
}

TEST(CudaKernels, Wkv7MatchesCpuFloat32) {
    REQUIRE_CUDA();
    compare(true, torch::kFloat32, 2e-4);
}

TEST(CudaKernels, Wkv6MatchesCpuFloat32) {
    REQUIRE_CUDA();
    compare(false, torch::kFloat32, 2e-4);
}

// bf16 inputs and outputs, float32 state: errors of bf16 rounding (2^-8), not more.
TEST(CudaKernels, Wkv7MatchesCpuBfloat16) {
    REQUIRE_CUDA();
    compare(true, torch::kBFloat16, 3e-2);
}

TEST(CudaKernels, Wkv6MatchesCpuBfloat16) {
    REQUIRE_CUDA();
    compare(false, torch::kBFloat16, 3e-2);
}

// Long sequences: RWKV-7's backward steps the state back within each chunk, so
// check that its error does not grow with T.
TEST(CudaKernels, Wkv7LongSequence) {
    REQUIRE_CUDA();
    torch::manual_seed(3);
    const Shape s{1, 1000, 2, 64};
    auto x = inputs(true, s);
    Tensor s0 = torch::zeros({s.B, s.H, s.N, s.N}, torch::kFloat64);
    Tensor gy = torch::randn({s.B, s.T, s.H, s.N}, torch::kFloat64), gs = torch::zeros_like(s0);
    Result want = evaluate(true, x, s0, gy, gs, torch::kCPU, torch::kFloat64);
    Result got = evaluate(true, x, s0, gy, gs, torch::Device(torch::kCUDA, 0), torch::kFloat32);
    for (size_t i = 0; i < want.grads.size(); ++i) EXPECT_LT(rel_err(got.grads[i], want.grads[i]), 1e-3) << i;
}

TEST(CudaKernels, RejectsUnsupportedHeadSize) {
    REQUIRE_CUDA();
    auto o = torch::TensorOptions().device(torch::kCUDA);
    Tensor x = torch::rand({1, 4, 1, 48}, o);
    EXPECT_THROW(cdrmix::ops::wkv7(x, x, x, x, x, x, Tensor()), c10::Error);
}

} // namespace
