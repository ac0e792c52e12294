// Mamba-2 block (SSD, Dao & Gu 2024), the simple variant of state-spaces
// mamba_ssm's Mamba2 (and Oxidizr's port) with one B/C group:
//
//   [z, xBC, dt] = in_proj(u)                 z: d_inner, xBC: d_inner + 2N, dt: H
//   xBC = silu(causal depthwise conv1d(xBC))  kernel d_conv, with bias
//   [x, B, C] = xBC                           x: H heads of P, B and C: N, shared by all heads
//   dt = softplus(dt + dt_bias),  A_h = -exp(A_log_h)
//   per head h:  S_t = exp(dt_t A_h) S_{t-1} + dt_t x_t B_t^T   (S in R^{P x N})
//                y_t = S_t C_t + D_h x_t
//   out = out_proj(rmsnorm(y * silu(z)) * norm.weight)       (gate before the norm)
//
// with d_inner = expand * hidden_size and H = d_inner / P.
//
// The parallel path is the chunked SSD scan: within each chunk of Q tokens the
// outputs come from matmuls with the masked cumulative-decay matrix
// L[i,j] = exp(sum_{j<k<=i} dt_k A) (the quadratic, attention-like form); each
// chunk's end state is summarised the same way, and the states entering the
// chunks come from one matmul with the chunk-level decay matrix, so no loop runs
// over tokens or chunks. A single token (decoding) takes the recurrent step.
// The sequence is zero-padded to a multiple of Q: padded steps have dt = 0,
// hence decay 1 and no input, and leave the state unchanged.
//
// Initialisation as mamba_ssm: softplus(dt_bias) log-uniform in [1e-3, 1e-1],
// A_log = log of uniform [1, 16], D = 1, norm weight 1, in_proj and conv1d
// LibTorch's defaults, out_proj zero, so a residual stack of these blocks
// starts as the identity and the model learns how much of each layer to use.
//
// Parameters: in_proj.weight, conv1d.weight, conv1d.bias, dt_bias [H], A_log [H],
// D [H], norm.weight [d_inner], out_proj.weight.
// State: {conv_state [B, d_inner + 2N, d_conv - 1] (the conv's last inputs),
// ssm_state [B, H, P, N]}.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace {

using torch::Tensor;

// out[..., i, j] = sum_{j<k<=i} a[..., k] for i >= j, -inf above the diagonal,
// so exp(out) is the masked decay matrix. Summing the masked inputs instead of
// differencing a cumulative sum keeps long chunks accurate.
Tensor segsum(const Tensor &a) {
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
Tensor pad_time(const Tensor &t, int64_t pad) {
    std::vector<int64_t> widths(static_cast<size_t>(2 * (t.dim() - 1)), 0);
    widths.back() = pad;
    return torch::constant_pad_nd(t, widths, 0.0);
}

// Chunked SSD scan. x [B,T,H,P], dt [B,T,H], A [H], b and c [B,T,N], s0 [B,H,P,N]
// or undefined (zeros). Returns y [B,T,H,P] (without the D skip) and the final state.
std::pair<Tensor, Tensor> ssd_chunked(Tensor x, Tensor dt, const Tensor &A, Tensor b, Tensor c, Tensor s0,
                                      int64_t Q) {
    const int64_t Bsz = x.size(0), T = x.size(1), H = x.size(2), P = x.size(3), N = b.size(2);
    const int64_t pad = (Q - T % Q) % Q;
    if (pad > 0) {
        x = pad_time(x, pad);
        dt = pad_time(dt, pad);
        b = pad_time(b, pad);
        c = pad_time(c, pad);
    }
    const int64_t nc = (T + pad) / Q;
    Tensor X = (x * dt.unsqueeze(-1)).reshape({Bsz, nc, Q, H, P}).permute({0, 1, 3, 2, 4}); // [B,nc,H,Q,P]
    Tensor a = (dt * A).reshape({Bsz, nc, Q, H}).permute({0, 1, 3, 2});                  // [B,nc,H,Q]
    Tensor a_cum = a.cumsum(-1);
    Tensor Bc = b.reshape({Bsz, nc, 1, Q, N});
    Tensor Cc = c.reshape({Bsz, nc, 1, Q, N});

    // Within chunks: y_i = sum_{j<=i} (C_i . B_j) L[i,j] dt_j x_j.
    Tensor y_diag = (Cc.matmul(Bc.transpose(-1, -2)) * torch::exp(segsum(a))).matmul(X); // [B,nc,H,Q,P]

    // Each chunk's contribution to the state at its end.
    Tensor to_end = torch::exp(a_cum.narrow(-1, Q - 1, 1) - a_cum);                   // [B,nc,H,Q]
    Tensor chunk_states = (X * to_end.unsqueeze(-1)).transpose(-1, -2).matmul(Bc);    // [B,nc,H,P,N]

    // Between chunks: the state entering chunk z is sum_{c<=z} decay(c..z) * contribution c,
    // with the initial state as contribution 0.
    if (!s0.defined()) s0 = torch::zeros({Bsz, H, P, N}, x.options());
    Tensor states = torch::cat({s0.unsqueeze(1), chunk_states}, 1)                     // [B,nc+1,H,P,N]
                        .permute({0, 2, 1, 3, 4})
                        .reshape({Bsz, H, nc + 1, P * N});
    Tensor chunk_totals = torch::constant_pad_nd(a_cum.select(-1, Q - 1).permute({0, 2, 1}), {1, 0}, 0.0); // [B,H,nc+1]
    Tensor entering = torch::exp(segsum(chunk_totals)).matmul(states).reshape({Bsz, H, nc + 1, P, N});

    // Entering states seen from inside each chunk: y_i += exp(a_cum_i) C_i S_in.
    Tensor s_in = entering.narrow(2, 0, nc).permute({0, 2, 1, 3, 4});                  // [B,nc,H,P,N]
    Tensor y_off = Cc.matmul(s_in.transpose(-1, -2)) * torch::exp(a_cum).unsqueeze(-1); // [B,nc,H,Q,P]

    Tensor y = (y_diag + y_off).permute({0, 1, 3, 2, 4}).reshape({Bsz, nc * Q, H, P}).narrow(1, 0, T);
    return {y, entering.select(2, nc)};
}

// One recurrent step: the same arguments with T == 1.
std::pair<Tensor, Tensor> ssd_step(const Tensor &x, const Tensor &dt, const Tensor &A, const Tensor &b,
                                   const Tensor &c, const Tensor &s0) {
    const int64_t Bsz = x.size(0), H = x.size(2), P = x.size(3), N = b.size(2);
    Tensor dt1 = dt.reshape({Bsz, H});
    Tensor s = (x.reshape({Bsz, H, P}) * dt1.unsqueeze(-1)).unsqueeze(-1) * b.reshape({Bsz, 1, 1, N});
    if (s0.defined()) s = s + s0 * torch::exp(dt1 * A).reshape({Bsz, H, 1, 1});
    Tensor y = s.matmul(c.reshape({Bsz, 1, N, 1})).reshape({Bsz, 1, H, P});
    return {y, s};
}

// RMSNorm of y * silu(z) over all d_inner channels (one group; norm_before_gate false).
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

class Mamba2 : public cdrmix::Block {
public:
    Mamba2(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        N_ = cfg.get_int("d_state");
        K_ = cfg.get_int("d_conv");
        const int64_t expand = cfg.get_int("expand");
        P_ = cfg.get_int("head_dim");
        Q_ = cfg.get_int("chunk_size");
        d_inner_ = expand * C;
        if (d_inner_ % P_ != 0)
            throw cdrmix::Error(cfg.where() + ": d_inner = expand * hidden_size = " + std::to_string(d_inner_) +
                                " must be a multiple of head_dim " + std::to_string(P_));
        H_ = d_inner_ / P_;
        conv_dim_ = d_inner_ + 2 * N_;

        in_proj = register_module(
            "in_proj", torch::nn::Linear(torch::nn::LinearOptions(C, d_inner_ + conv_dim_ + H_).bias(false)));
        conv1d = register_module(
            "conv1d", torch::nn::Conv1d(torch::nn::Conv1dOptions(conv_dim_, conv_dim_, K_).groups(conv_dim_).bias(true)));
        const double dt_min = 1e-3, dt_max = 1e-1;
        Tensor dt = torch::exp(torch::rand({H_}) * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min));
        dt_bias = register_parameter("dt_bias", dt + torch::log(-torch::expm1(-dt))); // softplus^-1(dt)
        A_log = register_parameter("A_log", torch::log(torch::empty({H_}).uniform_(1.0, 16.0)));
        D = register_parameter("D", torch::ones({H_}));
        norm = register_module("norm", std::make_shared<GatedRMSNorm>(d_inner_));
        out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(d_inner_, C).bias(false)));
        torch::NoGradGuard no_grad;
        out_proj->weight.zero_();
    }

    Tensor forward(const Tensor &u, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        const int64_t Bsz = u.size(0), T = u.size(1);
        const bool has_state = state && state->size() == 2;
        Tensor zxbcdt = in_proj(u);
        Tensor z = zxbcdt.narrow(-1, 0, d_inner_);
        Tensor xbc = zxbcdt.narrow(-1, d_inner_, conv_dim_);
        Tensor dt = zxbcdt.narrow(-1, d_inner_ + conv_dim_, H_);

        // The carried last d_conv-1 inputs (zeros at the start) are the causal conv's left padding.
        Tensor prev = has_state ? (*state)[0].to(u.dtype()) : torch::zeros({Bsz, conv_dim_, K_ - 1}, u.options());
        Tensor window = torch::cat({prev, xbc.transpose(1, 2)}, 2); // [B, conv_dim, d_conv-1+T]
        xbc = torch::silu(conv1d(window)).transpose(1, 2);          // [B, T, conv_dim]
        Tensor x = xbc.narrow(-1, 0, d_inner_).reshape({Bsz, T, H_, P_});
        Tensor b = xbc.narrow(-1, d_inner_, N_);
        Tensor c = xbc.narrow(-1, d_inner_ + N_, N_);
        dt = torch::softplus(dt + dt_bias);
        Tensor A = -torch::exp(A_log);

        Tensor s0 = has_state ? (*state)[1].to(u.dtype()) : Tensor();
        auto [y, s_final] = T == 1 ? ssd_step(x, dt, A, b, c, s0) : ssd_chunked(x, dt, A, b, c, s0, Q_);
        y = (y + x * D.unsqueeze(-1)).reshape({Bsz, T, d_inner_});
        // A copy, so the carried state does not keep the whole window alive.
        if (state) *state = {window.narrow(2, T, K_ - 1).contiguous(), s_final};
        return out_proj(norm->forward(y, z));
    }

private:
    int64_t N_, K_, P_, Q_, d_inner_, H_, conv_dim_;
    torch::nn::Linear in_proj{nullptr}, out_proj{nullptr};
    torch::nn::Conv1d conv1d{nullptr};
    std::shared_ptr<GatedRMSNorm> norm;
    Tensor dt_bias, A_log, D;
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Mamba-2 (SSD) mixer: conv, selective state space per head, gated RMSNorm");
    s.integer("d_state", 64, "state size N per head (the B and C projections)").min(1);
    s.integer("d_conv", 4, "kernel width of the causal depthwise convolution").min(1);
    s.integer("expand", 2, "d_inner = expand * hidden_size").min(1);
    s.integer("head_dim", 32, "channels per head P (d_inner must be a multiple)").min(1);
    s.integer("chunk_size", 64, "tokens per chunk Q of the parallel SSD scan").min(1);
    return s;
}

} // namespace

CDRMIX_PLUGIN("mamba2", "1.0.0", "Mamba-2 block (chunked SSD scan, streaming state)") {
    const cdrmix::Schema s = schema();
    registry.add_block("mamba2", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<Mamba2>(c, ctx);
                       });
}
