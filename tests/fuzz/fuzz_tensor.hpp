// Whatever a parser returns is read byte by byte in instrumented code, so an
// out-of-bounds view shows even where LibTorch's own (uninstrumented) copy
// kernels would have read it silently.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>

namespace fuzz {

// Reads the element a view reaches furthest into its storage (strides are
// non-negative here) and the first few thousand elements: enough for ASan to
// see a view past its storage without walking a huge view element by element.
inline uint64_t touch(const at::Tensor &t) {
    if (!t.defined() || t.numel() == 0) return 0;
    const auto *base = static_cast<const uint8_t *>(t.data_ptr());
    const int64_t item = static_cast<int64_t>(t.element_size());
    volatile uint64_t sum = 0;
    int64_t last = 0;
    for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
    for (int64_t b = 0; b < item; ++b) sum = sum + base[last * item + b];
    const int64_t n = std::min<int64_t>(t.numel(), 4096);
    for (int64_t i = 0; i < n; ++i) {
        int64_t offset = 0, rest = i;
        for (int64_t d = t.dim() - 1; d >= 0; --d) {
            offset += (rest % t.size(d)) * t.stride(d);
            rest /= t.size(d);
        }
        for (int64_t b = 0; b < item; ++b) sum = sum + base[offset * item + b];
    }
    return sum;
}

} // namespace fuzz
