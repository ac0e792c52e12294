// Mamba-1's selective scan as one fused CPU op with its own backward:
//   h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t,   y_t = C_t . h_t     (per channel d)
// dt, x [B, T, D]; A [D, N]; b, c [B, T, N]; h0 [B, D, N]. Returns {y [B, T, D],
// h_T [B, D, N]}, differentiable in every input, h0 included. Runs in float64 for
// float64 inputs and float32 otherwise (bf16 under autocast is widened).
#pragma once

#include <torch/torch.h>

#include <utility>

namespace mamba1 {

std::pair<torch::Tensor, torch::Tensor> selective_scan_fused(const torch::Tensor &dt, const torch::Tensor &x,
                                                             const torch::Tensor &A, const torch::Tensor &b,
                                                             const torch::Tensor &c, const torch::Tensor &h0);

} // namespace mamba1
