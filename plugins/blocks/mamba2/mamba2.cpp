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
// The parallel path is the chunked SSD scan (ssd_scan.hpp, with one key and one
// query per token: B and C, shared by the heads); a single token (decoding)
// takes the recurrent step.
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
#include "ssd_scan.hpp"

#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>

namespace {

using torch::Tensor;

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
        norm = register_module("norm", std::make_shared<ssd::GatedRMSNorm>(d_inner_));
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
        // One key and one query per token, shared by the heads.
        const ssd::ScanInputs in{c.reshape({Bsz, T, 1, 1, N_}), b.reshape({Bsz, T, 1, 1, N_}),
                                 (x * dt.unsqueeze(-1)).unsqueeze(3), dt * A};
        auto [y, s_final] = T == 1 ? ssd::ssd_step(in, s0) : ssd::ssd_chunked(in, s0, Q_);
        y = (y.squeeze(3) + x * D.unsqueeze(-1)).reshape({Bsz, T, d_inner_});
        // A copy, so the carried state does not keep the whole window alive.
        if (state) *state = {window.narrow(2, T, K_ - 1).contiguous(), s_final};
        return out_proj(norm->forward(y, z));
    }

private:
    int64_t N_, K_, P_, Q_, d_inner_, H_, conv_dim_;
    torch::nn::Linear in_proj{nullptr}, out_proj{nullptr};
    torch::nn::Conv1d conv1d{nullptr};
    std::shared_ptr<ssd::GatedRMSNorm> norm;
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
