// Mamba-1 block (selective state space, Gu & Dao 2023), the mixer of
// state-spaces mamba_ssm's Mamba (and Oxidizr's Mamba1):
//
//   [x, z] = in_proj(u)                       x, z: d_inner each
//   x = silu(causal depthwise conv1d(x))      kernel d_conv, with bias
//   [dt, B, C] = x_proj(x)                    dt: dt_rank, B and C: d_state (input-dependent)
//   dt = softplus(dt_proj(dt))                per channel, dt_proj with bias
//   A = -exp(A_log)                           [d_inner, d_state], a diagonal per channel
//   per channel d:  h_t = exp(dt_t A_d) h_{t-1} + dt_t B_t x_t    (h in R^{d_state})
//                   y_t = C_t . h_t + D_d x_t
//   out = out_proj(y * silu(z))
//
// with d_inner = expand * hidden_size. Unlike Mamba-2 the decay differs per
// channel and state entry, so there is no shared scalar decay to turn a chunk
// into matmuls. On CPU (`scan: fused`) the scan is one fused op with its own
// backward (selective_scan.cpp) that never stores the [B, T, d_inner, d_state]
// states. Elsewhere, or with `scan: chunked`, it is a two-level scan in tensor
// ops: the sequence is cut into chunks of Q ~ sqrt(T) tokens, one loop of Q steps
// runs every chunk at once from a zero state, one loop of T/Q steps carries the
// state across chunk boundaries, and the carried state reaches each token
// through the cumulative decay inside its chunk: about 2 sqrt(T) tensor steps
// instead of T, with nothing divided by a decay. Padded steps have decay 1 and no
// input, and leave the state unchanged. A single token there takes the recurrent step.
//
// Initialisation as mamba_ssm: A_log = log(1..d_state) per channel (S4D-real),
// D = 1, dt_proj.weight uniform in +-dt_rank^-1/2, softplus(dt_proj.bias)
// log-uniform in [1e-3, 1e-1], in_proj, x_proj and conv1d LibTorch's defaults;
// out_proj zero (as the mamba2 block), so a residual stack starts as the identity.
//
// Parameters: in_proj.weight, conv1d.weight, conv1d.bias, x_proj.weight,
// dt_proj.weight, dt_proj.bias, A_log [d_inner, d_state], D [d_inner], out_proj.weight.
// State: {conv_state [B, d_inner, d_conv - 1] (the conv's last inputs),
// ssm_state [B, d_inner, d_state]}.
#include "selective_scan.hpp"

#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace {

using torch::Tensor;

// What the scan consumes per token: dt and x [B, T, d_inner], b and c [B, T, d_state].
// The [.., d_inner, d_state] decay and input are formed inside the scan, already
// in its step-major layout, so no tensor of that size is padded or permuted.
struct ScanInputs {
    Tensor dt, x, b, c;
};

// Zero-pads dimension 1 (time) of t by `pad` steps at the end.
Tensor pad_time(const Tensor &t, int64_t pad) {
    std::vector<int64_t> widths(static_cast<size_t>(2 * (t.dim() - 1)), 0);
    widths.back() = pad;
    return torch::constant_pad_nd(t, widths, 0.0);
}

// [B, nc*Q, ...] -> [Q, B, nc, ...] contiguous, so each step of the in-chunk loop
// reads one contiguous slice covering every chunk.
Tensor steps_first(const Tensor &t, int64_t nc, int64_t Q) {
    std::vector<int64_t> shape{t.size(0), nc, Q};
    shape.insert(shape.end(), t.sizes().begin() + 2, t.sizes().end());
    std::vector<int64_t> order{2, 0, 1};
    for (int64_t d = 3; d < static_cast<int64_t>(shape.size()); ++d) order.push_back(d);
    return t.reshape(shape).permute(order).contiguous();
}

// Two-level selective scan (see the header) with A [d_inner, d_state]. h0 [B, d_inner,
// d_state] or undefined (zeros). Returns y [B, T, d_inner] (without the D skip) and the final state.
std::pair<Tensor, Tensor> selective_scan(const ScanInputs &in, const Tensor &A, const Tensor &h0) {
    const int64_t Bsz = in.x.size(0), T = in.x.size(1), Dn = in.x.size(2), N = in.b.size(2);
    const auto Q = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(T))));
    const int64_t pad = (Q - T % Q) % Q, nc = (T + pad) / Q;
    auto chunked = [&](const Tensor &t) { return steps_first(pad_time(t, pad), nc, Q); }; // [Q, B, nc, ..]
    Tensor dt = chunked(in.dt);
    Tensor a = dt.unsqueeze(-1) * A;                                        // [Q, B, nc, D, N], log decay
    Tensor u = (dt * chunked(in.x)).unsqueeze(-1) * chunked(in.b).unsqueeze(-2); // dt x B
    // unbind rather than indexing per step: its backward stacks the slices' gradients
    // once, where each select's backward would fill a whole zero tensor.
    const auto decay = torch::exp(a).unbind(0);
    const auto inputs = u.unbind(0);

    // Every chunk from a zero state, all chunks in each step.
    std::vector<Tensor> local{inputs[0]};
    for (size_t i = 1; i < inputs.size(); ++i) local.push_back(torch::addcmul(inputs[i], decay[i], local.back()));

    // The state entering each chunk: carried across chunk ends, from h0.
    const auto chunk_decay = torch::exp(a.sum(0)).unbind(1); // nc x [B, D, N]
    const auto chunk_end = local.back().unbind(1);
    Tensor h = h0.defined() ? h0 : torch::zeros({Bsz, Dn, N}, u.options());
    std::vector<Tensor> entering;
    for (size_t k = 0; k < chunk_end.size(); ++k) {
        entering.push_back(h);
        h = torch::addcmul(chunk_end[k], chunk_decay[k], h);
    }

    // h_t = local_t + (decay from the chunk's start through t) * entering state.
    Tensor states = torch::stack(local, 0) + torch::exp(a.cumsum(0)) * torch::stack(entering, 1).unsqueeze(0);
    Tensor y = states.matmul(chunked(in.c).unsqueeze(-1)).squeeze(-1); // [Q, B, nc, D]
    y = y.permute({1, 2, 0, 3}).reshape({Bsz, nc * Q, Dn}).narrow(1, 0, T);
    return {y, h};
}

// One recurrent step: the same arguments with T == 1.
std::pair<Tensor, Tensor> selective_step(const ScanInputs &in, const Tensor &A, const Tensor &h0) {
    Tensor dt = in.dt.select(1, 0); // [B, D]
    Tensor h = (dt * in.x.select(1, 0)).unsqueeze(-1) * in.b.select(1, 0).unsqueeze(1);
    if (h0.defined()) h = torch::addcmul(h, torch::exp(dt.unsqueeze(-1) * A), h0);
    Tensor y = h.matmul(in.c.select(1, 0).unsqueeze(-1)).squeeze(-1); // [B, D]
    return {y.unsqueeze(1), h};
}

class Mamba1 : public cdrmix::Block {
public:
    Mamba1(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        N_ = cfg.get_int("d_state");
        K_ = cfg.get_int("d_conv");
        d_inner_ = cfg.get_int("expand") * C;
        R_ = cfg.has("dt_rank") ? cfg.get_int("dt_rank") : (C + 15) / 16;
        fused_ = cfg.get_string("scan") == "fused";

        in_proj = register_module("in_proj", torch::nn::Linear(torch::nn::LinearOptions(C, 2 * d_inner_).bias(false)));
        conv1d = register_module(
            "conv1d", torch::nn::Conv1d(torch::nn::Conv1dOptions(d_inner_, d_inner_, K_).groups(d_inner_).bias(true)));
        x_proj = register_module("x_proj",
                                 torch::nn::Linear(torch::nn::LinearOptions(d_inner_, R_ + 2 * N_).bias(false)));
        dt_proj = register_module("dt_proj", torch::nn::Linear(torch::nn::LinearOptions(R_, d_inner_).bias(true)));
        A_log = register_parameter(
            "A_log", torch::log(torch::arange(1, N_ + 1, torch::kFloat32)).repeat({d_inner_, 1}));
        D = register_parameter("D", torch::ones({d_inner_}));
        out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(d_inner_, C).bias(false)));

        torch::NoGradGuard no_grad;
        const double std = 1.0 / std::sqrt(static_cast<double>(R_)), dt_min = 1e-3, dt_max = 1e-1;
        dt_proj->weight.uniform_(-std, std);
        Tensor dt = torch::exp(torch::rand({d_inner_}) * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min));
        dt_proj->bias.copy_(dt + torch::log(-torch::expm1(-dt))); // softplus^-1(dt)
        out_proj->weight.zero_();
    }

    Tensor forward(const Tensor &u, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        const int64_t Bsz = u.size(0), T = u.size(1);
        const bool has_state = state && state->size() == 2;
        Tensor xz = in_proj(u);
        Tensor x = xz.narrow(-1, 0, d_inner_);
        Tensor z = xz.narrow(-1, d_inner_, d_inner_);

        // The carried last d_conv-1 inputs (zeros at the start) are the causal conv's left padding.
        Tensor prev = has_state ? (*state)[0].to(u.dtype()) : torch::zeros({Bsz, d_inner_, K_ - 1}, u.options());
        Tensor window = torch::cat({prev, x.transpose(1, 2)}, 2); // [B, d_inner, d_conv-1+T]
        x = torch::silu(conv1d(window)).transpose(1, 2);          // [B, T, d_inner]

        Tensor dbc = x_proj(x);
        Tensor dt = torch::softplus(dt_proj(dbc.narrow(-1, 0, R_))); // [B, T, d_inner]
        Tensor b = dbc.narrow(-1, R_, N_), c = dbc.narrow(-1, R_ + N_, N_);
        const ScanInputs in{dt, x, b, c};
        Tensor A = -torch::exp(A_log);
        Tensor h0 = has_state ? (*state)[1].to(u.dtype()) : Tensor();
        auto [y, h] = scan(in, A, h0);
        y = y + x * D;
        // A copy, so the carried state does not keep the whole window alive.
        if (state) *state = {window.narrow(2, T, K_ - 1).contiguous(), h};
        return out_proj(y * torch::silu(z));
    }

private:
    std::pair<Tensor, Tensor> scan(const ScanInputs &in, const Tensor &A, const Tensor &h0) const {
        if (fused_ && in.x.device().is_cpu()) {
            auto [y, h] = mamba1::selective_scan_fused(in.dt, in.x, A, in.b, in.c, h0);
            return {y.to(in.x.scalar_type()), h};
        }
        return in.x.size(1) == 1 ? selective_step(in, A, h0) : selective_scan(in, A, h0);
    }

    int64_t N_, K_, d_inner_, R_;
    bool fused_;
    torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
    torch::nn::Conv1d conv1d{nullptr};
    Tensor A_log, D;
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Mamba-1 mixer: conv, input-dependent selective scan per channel, SiLU gate");
    s.integer("d_state", 16, "state size N per channel (the B and C projections)").min(1);
    s.integer("d_conv", 4, "kernel width of the causal depthwise convolution").min(1);
    s.integer("expand", 2, "d_inner = expand * hidden_size").min(1);
    s.integer("dt_rank", nullptr, "rank of the step-size projection x_proj -> dt_proj")
        .min(1)
        .default_is("ceil(hidden_size / 16)");
    s.string("scan", "fused", "fused: one CPU op storing no per-step states (chunked on other devices); "
                              "chunked: the two-level scan in tensor ops")
        .one_of({"fused", "chunked"});
    return s;
}

} // namespace

CDRMIX_PLUGIN("mamba1", "1.0.0", "Mamba-1 block (selective scan, streaming state)") {
    const cdrmix::Schema s = schema();
    registry.add_block("mamba1", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<Mamba1>(c, ctx);
                       });
}
