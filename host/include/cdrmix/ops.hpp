// cdrmix:: kernels. Each op is registered in PyTorch's dispatcher (schemas and
// the CPU implementation live in libcdrmix; backend plugins add CUDA etc.), so
// the device of the inputs picks the implementation. Every fused kernel has a
// plain reference beside it that tests compare against.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace cdrmix::ops {

// RWKV-7 WKV recurrence (generalised delta rule), per batch b and head h with
// the state S in R^{N x N} (rows: value index, columns: key index):
//   S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T,   y_t = S_t r_t
// r, w, k, v, a, b: [B,T,H,N] (w is the per-step decay factor in (0,1));
// state: [B,H,N,N] initial state, or undefined for zeros. The state is kept in
// float32 (float64 for float64 inputs).
// Returns y [B,T,H,N] and the final state [B,H,N,N]; differentiable in all inputs.
std::tuple<at::Tensor, at::Tensor> wkv7(const at::Tensor &r, const at::Tensor &w, const at::Tensor &k,
                                        const at::Tensor &v, const at::Tensor &a, const at::Tensor &b,
                                        const at::Tensor &state);

// The same recurrence written as a per-token loop of tensor ops: slow, obviously
// correct, differentiable by autograd. The oracle for wkv7.
std::tuple<at::Tensor, at::Tensor> wkv7_reference(const at::Tensor &r, const at::Tensor &w,
                                                  const at::Tensor &k, const at::Tensor &v,
                                                  const at::Tensor &a, const at::Tensor &b,
                                                  const at::Tensor &state);

// RWKV-6 WKV recurrence (data-dependent decay with a bonus for the current
// token), per batch b and head h with the state S in R^{N x N} (rows: key
// index, columns: value index):
//   y_t = r_t^T (diag(u) k_t v_t^T + S_{t-1}),   S_t = diag(w_t) S_{t-1} + k_t v_t^T
// r, w, k, v: [B,T,H,N] (w is the per-step decay factor in (0,1)); u: [H,N] the
// bonus; state: [B,H,N,N] initial state, or undefined for zeros. The state is
// kept in float32 (float64 for float64 inputs).
// Returns y [B,T,H,N] and the final state [B,H,N,N]; differentiable in all inputs.
std::tuple<at::Tensor, at::Tensor> wkv6(const at::Tensor &r, const at::Tensor &w, const at::Tensor &k,
                                        const at::Tensor &v, const at::Tensor &u, const at::Tensor &state);

// The same recurrence written as a per-token loop of tensor ops: slow, obviously
// correct, differentiable by autograd. The oracle for wkv6.
std::tuple<at::Tensor, at::Tensor> wkv6_reference(const at::Tensor &r, const at::Tensor &w,
                                                  const at::Tensor &k, const at::Tensor &v,
                                                  const at::Tensor &u, const at::Tensor &state);

// The instruction set of the CPU WKV kernels this process runs: "avx512",
// "avx2" or "baseline", the widest the CPU supports unless the environment
// variable CDRMIX_CPU_KERNELS names another. Chosen once, on first use, from
// any thread. Throws cdrmix::Error naming the sets available when
// CDRMIX_CPU_KERNELS names one this CPU lacks.
const char *wkv_cpu_kernel_isa();

} // namespace cdrmix::ops
