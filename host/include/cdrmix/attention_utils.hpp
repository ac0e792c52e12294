// Helpers for attention-style block plugins: rotary position embeddings and the
// causal (optionally sliding-window) visibility mask of a chunk against its cache.
#pragma once

#include <ATen/ATen.h>

namespace cdrmix {

// x [..., T, D] rotated (rotate-half convention) at positions start .. start+T-1.
// Angles are computed in float64 so large positions keep their precision in float32 models.
inline at::Tensor apply_rope(const at::Tensor &x, int64_t start, double theta) {
    const int64_t T = x.size(-2), D = x.size(-1), half = D / 2;
    auto f64 = at::TensorOptions().dtype(at::kDouble).device(x.device());
    at::Tensor inv_freq = at::pow(theta, at::arange(half, f64) * (-2.0 / double(D)));
    at::Tensor angles = at::arange(start, start + T, f64).unsqueeze(1) * inv_freq;
    at::Tensor cos = at::cat({angles.cos(), angles.cos()}, -1).to(x.scalar_type());
    at::Tensor sin = at::cat({angles.sin(), angles.sin()}, -1).to(x.scalar_type());
    at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
    return x * cos + rotated * sin;
}

// [T, cached+T] boolean: may the chunk's i-th query read entry j of cache + chunk?
// Keys are contiguous positions ending at the chunk, so the query sits at entry
// cached + i and the absolute start cancels. window > 0: at most `window` most
// recent keys, the query's own included.
inline at::Tensor visible_keys(int64_t T, int64_t cached, int64_t window, at::Device device) {
    auto i64 = at::TensorOptions().dtype(at::kLong).device(device);
    at::Tensor q = at::arange(T, i64).unsqueeze(1) + cached;
    at::Tensor k = at::arange(cached + T, i64).unsqueeze(0);
    at::Tensor visible = k <= q;
    if (window > 0) visible = visible.logical_and(q - k < window);
    return visible;
}

} // namespace cdrmix
