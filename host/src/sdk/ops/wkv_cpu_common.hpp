// Pieces shared by the ATen side of the CPU WKV ops (RWKV-6 and RWKV-7): the
// [B,T,H,N] layout, the accumulation dtype, and running one task per
// (batch, head) in parallel with the head kernels of wkv_head_kernels.hpp.
#pragma once

#include "wkv_head_kernels.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <initializer_list>
#include <vector>

namespace cdrmix::ops::cpu::detail {

struct Dims {
    int64_t B, T, H, N;
    // Offset of step 0 of (batch b, head h) in a [B,T,H,N] tensor.
    int64_t head_offset(int64_t b, int64_t h) const { return (b * T * H + h) * N; }
    int64_t stride() const { return H * N; }
};

inline Dims dims_of(const at::Tensor &r, const char *op) {
    TORCH_CHECK(r.dim() == 4, op, ": expected inputs of shape [B,T,H,N], got ", r.sizes());
    return {r.size(0), r.size(1), r.size(2), r.size(3)};
}

// The recurrent state (and the kernels' arithmetic) is float32, or float64 for
// float64 inputs; bf16 and half inputs are widened to float32 first.
inline at::ScalarType state_type(const at::Tensor &r) {
    return r.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline at::Tensor widened(const at::Tensor &t, at::ScalarType acc) { return t.to(acc).contiguous(); }

inline std::vector<at::Tensor> widened_inputs(std::initializer_list<const at::Tensor *> xs, at::ScalarType acc) {
    std::vector<at::Tensor> out;
    for (const at::Tensor *x : xs) out.push_back(widened(*x, acc));
    return out;
}

template <class T> const kernels::WkvKernels<T> &head_kernels();
template <> inline const kernels::WkvKernels<float> &head_kernels<float>() { return kernels::active_kernels().f32; }
template <> inline const kernels::WkvKernels<double> &head_kernels<double>() { return kernels::active_kernels().f64; }

// Calls f(bh, b, h, work) for every (batch, head) in parallel; work is a
// per-thread scratch buffer of `workspace` entries. Each thread gets at least
// about 256k state updates: decoding one token (N^2 per head) would otherwise
// wake a thread per head for microseconds of work.
template <class T, class F> void for_each_head(const Dims &d, int64_t workspace, const F &f) {
    constexpr int64_t kMinUpdatesPerThread = 1 << 18;
    const int64_t per_head = std::max<int64_t>(1, d.T * d.N * d.N);
    const int64_t grain = std::max<int64_t>(1, kMinUpdatesPerThread / per_head);
    at::parallel_for(0, d.B * d.H, grain, [&](int64_t begin, int64_t end) {
        std::vector<T> work(static_cast<size_t>(workspace));
        for (int64_t bh = begin; bh < end; ++bh) f(bh, bh / d.H, bh % d.H, work.data());
    });
}

} // namespace cdrmix::ops::cpu::detail
