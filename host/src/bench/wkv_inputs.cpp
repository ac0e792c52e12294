#include "bench/wkv_inputs.hpp"

#include <cdrmix/ops.hpp>

#include <torch/torch.h>

#include <cmath>

namespace cdrmix::bench {

using torch::Tensor;

WkvInputs make_wkv_inputs(bool v7, int64_t B, int64_t T, int64_t H, int64_t N, at::ScalarType dtype,
                          const c10::Device &device) {
    auto o = torch::TensorOptions().device(device);
    auto rn = [&] { return torch::randn({B, T, H, N}, o); };
    WkvInputs in;
    in.v7 = v7;
    if (v7) {
        auto kappa = torch::nn::functional::normalize(rn(), torch::nn::functional::NormalizeFuncOptions().dim(-1));
        in.x = {rn() * 0.5, torch::exp(-std::exp(-0.5) * torch::sigmoid(rn())), rn() * 0.5, rn(), -kappa,
                kappa * torch::sigmoid(rn())};
    } else {
        in.x = {rn() * 0.5, torch::exp(-torch::exp(rn() * 0.5 - 1.0)), rn() * 0.5, rn(),
                torch::randn({H, N}, o) * 0.5};
    }
    for (auto &t : in.x) t = t.to(dtype).requires_grad_(true);
    return in;
}

std::tuple<Tensor, Tensor> wkv_call(const WkvInputs &in, bool fused) {
    const auto &x = in.x;
    if (in.v7)
        return fused ? ops::wkv7(x[0], x[1], x[2], x[3], x[4], x[5], Tensor())
                     : ops::wkv7_reference(x[0], x[1], x[2], x[3], x[4], x[5], Tensor());
    return fused ? ops::wkv6(x[0], x[1], x[2], x[3], x[4], Tensor())
                 : ops::wkv6_reference(x[0], x[1], x[2], x[3], x[4], Tensor());
}

void wkv_forward_backward(const WkvInputs &in, bool fused) {
    for (auto &t : in.x) t.mutable_grad() = Tensor();
    auto [y, s] = wkv_call(in, fused);
    y.backward(torch::ones_like(y));
}

double wkv_flops(bool v7, int64_t B, int64_t T, int64_t H, int64_t N) {
    // Per step and head, in multiply-adds of N^2: RWKV-7 forward S a, the update,
    // S r (3); backward recomputes the update and does about 8 more (dS updates,
    // S^T dy, dS k, dS^T v, dS^T sa, dS b, dS .* S, S^T dsa). RWKV-6: forward
    // update and S r (2); backward recompute plus 5.
    const double mads = v7 ? 3 + 2 + 8 : 2 + 1 + 5;
    return 2.0 * mads * double(B * T * H) * double(N * N);
}

} // namespace cdrmix::bench
