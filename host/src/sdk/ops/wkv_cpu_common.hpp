// Pieces shared by the CPU WKV kernels (RWKV-6 and RWKV-7): the [B,T,H,N] layout,
// loading one head's vector into accumulation precision, and the state dtype.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace cdrmix::ops::cpu::detail {

struct Dims {
    int64_t B, T, H, N;
};

template <class acc_t> using Buf = std::vector<acc_t>;

// Copies the N-vector of (b, t, h) into acc precision.
template <class scalar_t, class acc_t>
inline void load(const scalar_t *src, const Dims &d, int64_t b, int64_t t, int64_t h, acc_t *dst) {
    const scalar_t *p = src + ((b * d.T + t) * d.H + h) * d.N;
    for (int64_t n = 0; n < d.N; ++n) dst[n] = static_cast<acc_t>(p[n]);
}

inline Dims dims_of(const at::Tensor &r, const char *op) {
    TORCH_CHECK(r.dim() == 4, op, ": expected inputs of shape [B,T,H,N], got ", r.sizes());
    return {r.size(0), r.size(1), r.size(2), r.size(3)};
}

// The recurrent state is float32, or float64 for float64 inputs.
inline at::ScalarType state_type(const at::Tensor &r) {
    return r.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

} // namespace cdrmix::ops::cpu::detail
