// WKV benchmark inputs shaped like the blocks produce them, for the CPU and GPU tables.
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

namespace cdrmix::bench {

struct WkvInputs {
    bool v7 = true;
    std::vector<at::Tensor> x; // r, w, k, v, then a, b (RWKV-7) or u (RWKV-6); all require grad
};

// RWKV-7: decays in (0.545, 1), a = -kappa, b = kappa * sigmoid(.); RWKV-6: decays exp(-exp(.)).
WkvInputs make_wkv_inputs(bool v7, int64_t B, int64_t T, int64_t H, int64_t N, at::ScalarType dtype,
                          const c10::Device &device);

// The fused op (cdrmix::ops::wkv6/wkv7) or its per-token reference; returns y and the final state.
std::tuple<at::Tensor, at::Tensor> wkv_call(const WkvInputs &in, bool fused);

// Forward, then backward of sum(y) with the inputs' gradients cleared first.
void wkv_forward_backward(const WkvInputs &in, bool fused);

// Multiply-adds x2 of one forward + backward (with the backward's recomputation).
double wkv_flops(bool v7, int64_t B, int64_t T, int64_t H, int64_t N);

} // namespace cdrmix::bench
