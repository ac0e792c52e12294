// RWKV token shift, for block plugins: the previous token's features,
// with the carried state supplying the token before the first one.
#pragma once

#include <ATen/ATen.h>

namespace cdrmix {

// x: [B,T,C]; prev: [B,C] or undefined (zeros). Returns x shifted right by one token.
inline at::Tensor shift_tokens(const at::Tensor &x, const at::Tensor &prev) {
    at::Tensor first = prev.defined() ? prev.unsqueeze(1).to(x.dtype()) : at::zeros_like(x.slice(1, 0, 1));
    return at::cat({first, x.slice(1, 0, x.size(1) - 1)}, 1);
}

// ddd[i] = i / C, RWKV's per-channel ramp for token-shift initialisation: [1,1,C].
inline at::Tensor channel_ramp(int64_t C) {
    return (at::arange(C, at::kFloat) / double(C)).reshape({1, 1, C});
}

} // namespace cdrmix
