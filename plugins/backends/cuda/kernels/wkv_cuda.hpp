// Launchers of the WKV GPU kernels. Plain C++ (no LibTorch) so the kernels
// compile with nvcc or hipcc alone; the dispatcher glue (cuda_ops.cpp) checks
// shapes and dtypes and calls these. All pointers are device pointers in the
// [B,T,H,N] layout of cdrmix/ops.hpp; states are float32 [B,H,N,N] (row: the
// index the recurrence's left factor runs over, as in ops.hpp).
#pragma once

#include <cstddef>

#if defined(CDRMIX_HIP)
#include <hip/hip_runtime_api.h>
using cdrmixStream_t = hipStream_t;
#else
#include <cuda_runtime_api.h>
using cdrmixStream_t = cudaStream_t;
#endif

namespace cdrmix::gpu {

enum class DType { F32, BF16, F16 };

struct WkvDims {
    int B, T, H, N;
};

// Head sizes the kernels are instantiated for (the state row lives in registers).
bool wkv_head_size_supported(int N);

// ---- RWKV-7 -------------------------------------------------------------------
// Forward. When `states` is not null it receives the state at the end of every
// chunk of `chunk` steps ([B,H,ceil(T/chunk),N,N]) and `sa` the per-step S_{t-1} a_t
// ([B,T,H,N]): what backward needs.
void wkv7_forward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v, const void *a,
                  const void *b, const float *s0, void *y, float *s_final, float *states, float *sa, int chunk,
                  cdrmixStream_t stream);

// Backward: walks each chunk in reverse from its saved end state, stepping the
// state back one token at a time (S_{t-1} = (S_t - sa_t b_t^T - v_t k_t^T) diag(1/w_t)).
// Exact in exact arithmetic; in float32 the error within a chunk grows by at most
// prod(1/w) over the chunk, small for RWKV-7's decays (w > 0.545).
void wkv7_backward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v,
                   const void *a, const void *b, const float *states, const float *sa, const void *dy,
                   const float *ds, void *dr, void *dw, void *dk, void *dv, void *da, void *db, float *ds0,
                   int chunk, cdrmixStream_t stream);

// ---- RWKV-6 -------------------------------------------------------------------
void wkv6_forward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v, const void *u,
                  const float *s0, void *y, float *s_final, cdrmixStream_t stream);

// Backward from the initial state alone: one forward pass recomputes the states
// for dr, one reverse pass carries dL/dS for dk, dv and ds0, and dw comes from
// the identity dL/dlog w_t = Q_t - k_t * (dL/dS_t v_t) with
// Q_{t-1} = dL/dlog w_t + r_t * (S_{t-1} dy_t), Q_{T-1} = rowsum(ds .* S_{T-1}),
// so no state is ever stored or stepped back. du_partial is [B,H,N] (sum over B
// is du); scratch is [B,T,H,N] float32.
void wkv6_backward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v,
                   const void *u, const float *s0, const void *dy, const float *ds, void *dr, void *dw, void *dk,
                   void *dv, float *du_partial, float *ds0, float *scratch, cdrmixStream_t stream);

} // namespace cdrmix::gpu
