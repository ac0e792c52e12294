// The SSD scan of the mamba2 block, shared with mamba3 (header-only: each plugin
// is its own library). A scalar-decay recurrence per head with several keys and
// queries per token:
//   S_t = exp(a_t) S_{t-1} + sum_r v_{t,r} k_{t,r}^T,   y_{t,r'} = S_t q_{t,r'}
// q [B,T,H|1,Rq,N], k [B,T,H|1,Rk,N], v [B,T,H,Rk,P], a [B,T,H]; a head
// dimension of 1 in q or k is shared by every head (Mamba-2's single B/C group).
//
// The parallel form is the chunked SSD scan: within each chunk of Q tokens the
// outputs come from matmuls with the masked cumulative-decay matrix
// L[i,j] = exp(sum_{j<k<=i} a_k) (the quadratic, attention-like form), repeated
// over the rows of each token when it has several keys or queries; each chunk's
// end state is summarised the same way, and the states entering the chunks come
// from one matmul with the chunk-level decay matrix, so no loop runs over tokens
// or chunks. The sequence is zero-padded to a multiple of Q: padded steps have
// a = 0, hence decay 1, and no input, and leave the state unchanged.
#pragma once

#include <torch/torch.h>

#include <limits>
#include <utility>
#include <vector>

namespace ssd {

using torch::Tensor;

struct ScanInputs {
    Tensor q, k, v, a;
};

// out[..., i, j] = sum_{j<k<=i} a[..., k] for i >= j, -inf above the diagonal,
// so exp(out) is the masked decay matrix. Summing the masked inputs instead of
// differencing a cumulative sum keeps long chunks accurate.
inline Tensor segsum(const Tensor &a) {
    const int64_t L = a.size(-1);
    std::vector<int64_t> square(a.sizes().begin(), a.sizes().end());
    square.push_back(L);
    Tensor rows = a.unsqueeze(-1).expand(square); // rows[..., i, j] = a[..., i]
    Tensor strict = torch::ones({L, L}, a.options().dtype(torch::kBool)).tril(-1);
    Tensor sums = rows.masked_fill(strict.logical_not(), 0.0).cumsum(-2);
    Tensor lower = torch::ones({L, L}, a.options().dtype(torch::kBool)).tril(0);
    return sums.masked_fill(lower.logical_not(), -std::numeric_limits<double>::infinity());
}

// Zero-pads dimension 1 (time) of t by `pad` steps at the end.
inline Tensor pad_time(const Tensor &t, int64_t pad) {
    std::vector<int64_t> widths(static_cast<size_t>(2 * (t.dim() - 1)), 0);
    widths.back() = pad;
    return torch::constant_pad_nd(t, widths, 0.0);
}

// [B, nc*Q, H, R, X] -> [B, nc, H, Q*R, X]: each chunk's rows, token-major.
inline Tensor chunk_rows(const Tensor &t, int64_t nc, int64_t Q) {
    const int64_t Bsz = t.size(0), H = t.size(2), R = t.size(3), X = t.size(4);
    return t.reshape({Bsz, nc, Q, H, R, X}).permute({0, 1, 3, 2, 4, 5}).reshape({Bsz, nc, H, Q * R, X});
}

// Repeats each entry of dimension `dim` r times (the rows of one token).
inline Tensor per_row(const Tensor &t, int64_t r, int64_t dim) { return r == 1 ? t : t.repeat_interleave(r, dim); }

// The chunked scan. s0 [B,H,P,N] or undefined (zeros). Returns y [B,T,H,Rq,P] and the final state.
inline std::pair<Tensor, Tensor> ssd_chunked(const ScanInputs &in, Tensor s0, int64_t Q) {
    const int64_t Bsz = in.v.size(0), T = in.v.size(1), H = in.v.size(2), P = in.v.size(4);
    const int64_t N = in.k.size(4), Rq = in.q.size(3), Rk = in.k.size(3);
    const int64_t pad = (Q - T % Q) % Q, nc = (T + pad) / Q;
    Tensor q = chunk_rows(pad_time(in.q, pad), nc, Q), k = chunk_rows(pad_time(in.k, pad), nc, Q);
    Tensor v = chunk_rows(pad_time(in.v, pad), nc, Q);
    Tensor a = pad_time(in.a, pad).reshape({Bsz, nc, Q, H}).permute({0, 1, 3, 2}); // [B,nc,H,Q]
    Tensor a_cum = a.cumsum(-1);

    // Within chunks: y_i = sum_{j<=i} (q_i . k_j) L[i,j] v_j.
    Tensor decay = per_row(per_row(torch::exp(segsum(a)), Rq, -2), Rk, -1);
    Tensor y_diag = (q.matmul(k.transpose(-1, -2)) * decay).matmul(v); // [B,nc,H,Q*Rq,P]

    // Each chunk's contribution to the state at its end.
    Tensor to_end = per_row(torch::exp(a_cum.narrow(-1, Q - 1, 1) - a_cum), Rk, -1);
    Tensor chunk_states = (v * to_end.unsqueeze(-1)).transpose(-1, -2).matmul(k); // [B,nc,H,P,N]

    // Between chunks: the state entering chunk z is sum_{c<=z} decay(c..z) * contribution c,
    // with the initial state as contribution 0.
    if (!s0.defined()) s0 = torch::zeros({Bsz, H, P, N}, v.options());
    Tensor states = torch::cat({s0.unsqueeze(1), chunk_states}, 1) // [B,nc+1,H,P,N]
                        .permute({0, 2, 1, 3, 4})
                        .reshape({Bsz, H, nc + 1, P * N});
    Tensor chunk_totals = torch::constant_pad_nd(a_cum.select(-1, Q - 1).permute({0, 2, 1}), {1, 0}, 0.0);
    Tensor entering = torch::exp(segsum(chunk_totals)).matmul(states).reshape({Bsz, H, nc + 1, P, N});

    // Entering states seen from inside each chunk: y_i += exp(a_cum_i) S_in q_i.
    Tensor s_in = entering.narrow(2, 0, nc).permute({0, 2, 1, 3, 4}); // [B,nc,H,P,N]
    Tensor y_off = q.matmul(s_in.transpose(-1, -2)) * per_row(torch::exp(a_cum), Rq, -1).unsqueeze(-1);

    Tensor y = (y_diag + y_off).reshape({Bsz, nc, H, Q, Rq, P}).permute({0, 1, 3, 2, 4, 5});
    return {y.reshape({Bsz, nc * Q, H, Rq, P}).narrow(1, 0, T), entering.select(2, nc)};
}

// One recurrent step: the same arguments with T == 1.
inline std::pair<Tensor, Tensor> ssd_step(const ScanInputs &in, const Tensor &s0) {
    Tensor s = in.v.select(1, 0).transpose(-1, -2).matmul(in.k.select(1, 0)); // [B,H,P,N]
    if (s0.defined()) s = s + s0 * torch::exp(in.a.select(1, 0)).unsqueeze(-1).unsqueeze(-1);
    Tensor y = in.q.select(1, 0).matmul(s.transpose(-1, -2)); // [B,H,Rq,P]
    return {y.unsqueeze(1), s};
}

// RMSNorm of y * silu(z) over all d_inner channels (one group; the gate before the norm).
class GatedRMSNorm : public torch::nn::Module {
public:
    explicit GatedRMSNorm(int64_t d) { weight = register_parameter("weight", torch::ones({d})); }

    Tensor forward(const Tensor &y, const Tensor &z) {
        Tensor g = y * torch::silu(z);
        return g * torch::rsqrt(g.square().mean(-1, true) + 1e-5) * weight;
    }

private:
    Tensor weight;
};

} // namespace ssd
