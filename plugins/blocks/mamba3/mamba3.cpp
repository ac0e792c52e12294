// Mamba-3 block (Lahoti et al. 2026), on the Mamba-2 structure as Oxidizr's Mamba3:
//
//   [z, x, B, C, dt] = in_proj(u)      z, x: d_inner (H heads of P), B and C: R x N, dt: H
//   [x, B, C] = silu(causal depthwise conv1d([x, B, C]))    only with use_conv
//   B, C = rmsnorm(B) * bc_norm[0] + b_bias_h,  rmsnorm(C) * bc_norm[1] + c_bias_h    per head
//   dt = softplus(dt + dt_bias),  A_h = -exp(A_log_h),  lambda = sigmoid(lambda_proj(u))
//   exponential-trapezoidal step, per head h (state S in R^{P x N}):
//     S_t = a_t Rot_t S_{t-1} + b_t Rot_t X_{t-1} B_{t-1}^T + g_t X_t B_t^T
//     a_t = exp(dt_t A_h),  b_t = (1 - lambda_t) dt_t a_t,  g_t = lambda_t dt_t
//     y_t = S_t C_t + D_h x_t
//   out = out_proj(rmsnorm(y * silu(z)) * norm.weight)
//
// Rot_t turns the pairs (S[:, i], S[:, i + N/2]) by dt_t theta_t[i] with
// theta = theta_proj(u) (complex_rope): the complex-valued state with
// imaginary part theta. Since Rot_t commutes with the decay, the recurrence runs
// on a real state in the rotating frame: with Phi_t the cumulative angle,
// B~_t = Rot(-Phi_t) B_t and C~_t = Rot(-Phi_t) C_t (RoPE on B and C) give
// C_t.Rot(Phi_t - Phi_s) B_s = C~_t.B~_s, so the step is a Mamba-2 step whose
// input is a rank-2 update: the current (X_t, B~_t) and the previous (X_{t-1}, B~_{t-1}).
//
// MIMO (mimo_rank R > 0): B and C have R rows per token, X_r = x * mimo_x_up[h, r]
// (per channel), the state takes the rank-R update sum_r X_r B_r^T and
// y = sum_r mimo_x_down[h, r] * (S C_r). Without it R = 1 and X = x.
//
// The parallel path is the mamba2 block's chunked SSD scan (../mamba2/ssd_scan.hpp)
// with 2R keys per token (the current and the previous token's) and R queries;
// a single token takes the recurrent step.
//
// Initialisation: in_proj, conv1d, lambda_proj and theta_proj LibTorch's defaults
// (lambda near 1/2, the trapezoid's average), b_bias = c_bias = 1 and bc_norm = 1
// (the paper's BC bias), dt_bias, A_log and D as the mamba2 block, mimo_x_up 1,
// mimo_x_down 1/R, out_proj zero.
//
// State: {ssm_state [B, H, P, N], the previous token's rotated key B~ [B, H, R, N]
// and input X [B, H, R, P]}, then with complex_rope the cumulative angle
// [B, H, N/2], then with use_conv the conv's last inputs [B, conv_dim, d_conv - 1].
#include "../mamba2/ssd_scan.hpp"

#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <utility>

namespace {

using torch::Tensor;

// Turns the pairs (v[..., i], v[..., i + N/2]) by phi[..., i].
Tensor rotate(const Tensor &v, const Tensor &phi) {
    const int64_t half = v.size(-1) / 2;
    Tensor v1 = v.narrow(-1, 0, half), v2 = v.narrow(-1, half, half);
    Tensor cs = torch::cos(phi), sn = torch::sin(phi);
    return torch::cat({v1 * cs - v2 * sn, v1 * sn + v2 * cs}, -1);
}

// RMS over the last dimension.
Tensor rms_normalise(const Tensor &t) { return t * torch::rsqrt(t.square().mean(-1, true) + 1e-5); }

// The previous token's value of t [B,T,...] at every step: `first` (the carried
// value, or zeros) at step 0, then t shifted by one.
Tensor previous(const Tensor &t, const Tensor &first) {
    Tensor head = first.defined() ? first.unsqueeze(1) : torch::zeros_like(t.narrow(1, 0, 1));
    return torch::cat({head, t.narrow(1, 0, t.size(1) - 1)}, 1);
}

class Mamba3 : public cdrmix::Block {
public:
    Mamba3(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        N_ = cfg.get_int("d_state");
        K_ = cfg.get_int("d_conv");
        P_ = cfg.get_int("head_dim");
        Q_ = cfg.get_int("chunk_size");
        rope_ = cfg.get_bool("complex_rope");
        conv_ = cfg.get_bool("use_conv");
        mimo_ = cfg.get_int("mimo_rank") > 0;
        R_ = mimo_ ? cfg.get_int("mimo_rank") : 1;
        d_inner_ = cfg.get_int("expand") * C;
        if (d_inner_ % P_ != 0)
            throw cdrmix::Error(cfg.where() + ": d_inner = expand * hidden_size = " + std::to_string(d_inner_) +
                                " must be a multiple of head_dim " + std::to_string(P_));
        if (rope_ && N_ % 2 != 0)
            throw cdrmix::Error(cfg.where() + ": key 'd_state' must be even with complex_rope (got " +
                                std::to_string(N_) + "; try " + std::to_string(N_ + 1) +
                                " or complex_rope: false)");
        H_ = d_inner_ / P_;
        conv_dim_ = d_inner_ + 2 * R_ * N_;

        in_proj = register_module(
            "in_proj", torch::nn::Linear(torch::nn::LinearOptions(C, d_inner_ + conv_dim_ + H_).bias(false)));
        if (conv_)
            conv1d = register_module("conv1d", torch::nn::Conv1d(torch::nn::Conv1dOptions(conv_dim_, conv_dim_, K_)
                                                                     .groups(conv_dim_)
                                                                     .bias(true)));
        const double dt_min = 1e-3, dt_max = 1e-1;
        Tensor dt = torch::exp(torch::rand({H_}) * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min));
        dt_bias = register_parameter("dt_bias", dt + torch::log(-torch::expm1(-dt))); // softplus^-1(dt)
        A_log = register_parameter("A_log", torch::log(torch::empty({H_}).uniform_(1.0, 16.0)));
        D = register_parameter("D", torch::ones({H_}));
        lambda_proj = register_module("lambda_proj", torch::nn::Linear(C, H_));
        if (rope_) theta_proj = register_module("theta_proj", torch::nn::Linear(C, N_ / 2));
        b_bias = register_parameter("b_bias", torch::ones({H_, R_, N_}));
        c_bias = register_parameter("c_bias", torch::ones({H_, R_, N_}));
        bc_norm = register_parameter("bc_norm", torch::ones({2, N_}));
        if (mimo_) {
            mimo_x_up = register_parameter("mimo_x_up", torch::ones({H_, R_, P_}));
            mimo_x_down = register_parameter("mimo_x_down", torch::full({H_, R_, P_}, 1.0 / static_cast<double>(R_)));
        }
        norm = register_module("norm", std::make_shared<ssd::GatedRMSNorm>(d_inner_));
        out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(d_inner_, C).bias(false)));
        torch::NoGradGuard no_grad;
        out_proj->weight.zero_();
    }

    Tensor forward(const Tensor &u, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        const int64_t Bsz = u.size(0), T = u.size(1);
        const bool has_state = state && !state->empty();
        auto carried = [&](size_t i) { return has_state ? (*state)[i].to(u.dtype()) : Tensor(); };
        Tensor proj = in_proj(u);
        Tensor z = proj.narrow(-1, 0, d_inner_);
        Tensor xbc = proj.narrow(-1, d_inner_, conv_dim_);
        Tensor dt = torch::softplus(proj.narrow(-1, d_inner_ + conv_dim_, H_) + dt_bias); // [B,T,H]

        Tensor window;
        if (conv_) {
            Tensor prev = has_state ? carried(conv_slot())
                                    : torch::zeros({Bsz, conv_dim_, K_ - 1}, u.options());
            window = torch::cat({prev, xbc.transpose(1, 2)}, 2);
            xbc = torch::silu(conv1d(window)).transpose(1, 2);
        }
        Tensor x = xbc.narrow(-1, 0, d_inner_).reshape({Bsz, T, H_, P_});
        Tensor b = rms_normalise(xbc.narrow(-1, d_inner_, R_ * N_).reshape({Bsz, T, 1, R_, N_})) * bc_norm[0] + b_bias;
        Tensor c = rms_normalise(xbc.narrow(-1, d_inner_ + R_ * N_, R_ * N_).reshape({Bsz, T, 1, R_, N_})) *
                       bc_norm[1] +
                   c_bias; // [B,T,H,R,N]

        // RoPE on B and C by the cumulative angle (the rotating frame of the complex state).
        Tensor angle;
        if (rope_) {
            Tensor step = dt.unsqueeze(-1) * theta_proj(u).unsqueeze(2); // [B,T,H,N/2]
            angle = step.cumsum(1);
            if (has_state) angle = angle + carried(kAngleSlot).unsqueeze(1);
            b = rotate(b, -angle.unsqueeze(3));
            c = rotate(c, -angle.unsqueeze(3));
        }

        Tensor X = mimo_ ? x.unsqueeze(3) * mimo_x_up : x.unsqueeze(3); // [B,T,H,R,P]
        Tensor a = dt * -torch::exp(A_log);
        Tensor lambda = torch::sigmoid(lambda_proj(u));
        Tensor gamma = (lambda * dt).unsqueeze(-1).unsqueeze(-1);
        Tensor beta = ((1 - lambda) * dt * torch::exp(a)).unsqueeze(-1).unsqueeze(-1);
        // The trapezoid's two ends: this token's key and input, and the previous token's.
        const ssd::ScanInputs in{c, torch::cat({b, previous(b, carried(1))}, 3),
                                 torch::cat({X * gamma, previous(X, carried(2)) * beta}, 3), a};
        auto [y, s] = T == 1 ? ssd::ssd_step(in, carried(0)) : ssd::ssd_chunked(in, carried(0), Q_);
        y = mimo_ ? (y * mimo_x_down).sum(3) : y.squeeze(3); // [B,T,H,P]
        y = (y + x * D.unsqueeze(-1)).reshape({Bsz, T, d_inner_});

        if (state) {
            cdrmix::BlockState next{s, b.select(1, T - 1), X.select(1, T - 1)};
            if (rope_) next.push_back(angle.select(1, T - 1));
            // A copy, so the carried state does not keep the whole window alive.
            if (conv_) next.push_back(window.narrow(2, T, K_ - 1).contiguous());
            *state = std::move(next);
        }
        return out_proj(norm->forward(y, z));
    }

private:
    // State slots after {ssm_state, previous key, previous input}: the angle, then the conv window.
    static constexpr size_t kAngleSlot = 3;
    size_t conv_slot() const { return rope_ ? kAngleSlot + 1 : kAngleSlot; }

    int64_t N_, K_, P_, Q_, R_, d_inner_, H_, conv_dim_;
    bool rope_, conv_, mimo_;
    torch::nn::Linear in_proj{nullptr}, lambda_proj{nullptr}, theta_proj{nullptr}, out_proj{nullptr};
    torch::nn::Conv1d conv1d{nullptr};
    std::shared_ptr<ssd::GatedRMSNorm> norm;
    Tensor dt_bias, A_log, D, b_bias, c_bias, bc_norm, mimo_x_up, mimo_x_down;
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Mamba-3 mixer: trapezoidal steps, complex (rotary) state, BC norm and bias, optional MIMO");
    s.integer("d_state", 64, "state size N per head (the B and C projections; even with complex_rope)").min(1);
    s.integer("expand", 2, "d_inner = expand * hidden_size").min(1);
    s.integer("head_dim", 32, "channels per head P (d_inner must be a multiple)").min(1);
    s.integer("chunk_size", 64, "tokens per chunk Q of the parallel scan").min(1);
    s.boolean("complex_rope", true, "complex-valued state: B and C turned by the cumulative angle of theta_proj");
    s.boolean("use_conv", false, "the causal depthwise convolution on x, B and C (Mamba-2's), off in Mamba-3");
    s.integer("d_conv", 4, "kernel width of that convolution (with use_conv)").min(1);
    s.integer("mimo_rank", 0, "MIMO rank R: R rows of B and C per token (0: single input, single output)").min(0);
    return s;
}

} // namespace

CDRMIX_PLUGIN("mamba3", "1.0.0", "Mamba-3 block (trapezoidal, rotary complex state, MIMO option)") {
    const cdrmix::Schema s = schema();
    registry.add_block("mamba3", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<Mamba3>(c, ctx);
                       });
}
