// RWKV-7's default LoRA ranks from the width C, as RWKV-LM's RWKV-v7/train_temp
// model computes them: max(32, int(round(factor * C**0.5 / 32) * 32)), with
// factor 2.5 (decay, in-context learning rate), 1.7 (value residual), 5 (gate).
// Python's round() takes halves to the even neighbour, so 2.5 -> 2: rounding
// halves up instead gives other ranks at C = 256, 1024 and 6400, and a published
// model's tensors would not fit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace cdrmix {

inline int64_t rwkv7_lora_rank(double factor, int64_t C) {
    // nearbyint rounds halves to even in the default rounding mode, as Python's round() does;
    // std::pow(C, 0.5) is Python's C**0.5.
    const double steps = std::nearbyint(factor * std::pow(double(C), 0.5) / 32.0);
    return std::max<int64_t>(32, static_cast<int64_t>(steps) * 32);
}

} // namespace cdrmix
