// RWKV-7 "Goose" time mixing (the generalised delta rule), after RWKV-LM's
// RWKV-v7/train_temp reference: static token-shift mixes, LoRA-generated decay
// (soft-clamped to (0.545, 1)), in-context learning rate a, value residual to
// layer 0, output gate, per-head GroupNorm and the r_k bonus. The WKV
// recurrence runs in the fused cdrmix::wkv7 op; state per head is N x N fp32.
//
// The LoRA ranks default to the reference's choice from the width (cdrmix/rwkv7_lora.hpp).
// State: {previous token's x [B,C], WKV state [B,H,N,N]}.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

using torch::Tensor;

class RWKV7TimeMix : public cdrmix::Block {
public:
    RWKV7TimeMix(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) : layer_(ctx.layer) {
        C_ = ctx.hidden_size;
        N_ = cfg.get_int("head_size");
        if (C_ % N_ != 0)
            throw cdrmix::Error(cfg.where() + ": hidden_size " + std::to_string(C_) +
                                " must be a multiple of head_size " + std::to_string(N_));
        H_ = C_ / N_;
        auto rank = [&](const char *key, double factor) {
            return cfg.has(key) ? cfg.get_int(key) : cdrmix::rwkv7_lora_rank(factor, C_);
        };
        const int64_t d_decay = rank("decay_lora", 2.5);
        const int64_t d_a = rank("a_lora", 2.5);
        const int64_t d_v = rank("v_lora", 1.7);
        const int64_t d_gate = rank("gate_lora", 5.0);

        torch::NoGradGuard no_grad;
        const double L = double(ctx.num_layers);
        const double r01 = L > 1 ? double(ctx.layer) / (L - 1) : 0.0;     // 0 at the first layer, 1 at the last
        const double r10 = 1.0 - double(ctx.layer) / L;                    // 1 at the first layer, ~0 at the last
        Tensor ddd = cdrmix::channel_ramp(C_);
        x_r = register_parameter("x_r", 1.0 - ddd.pow(0.2 * r10));
        x_w = register_parameter("x_w", 1.0 - ddd.pow(0.9 * r10));
        x_k = register_parameter("x_k", 1.0 - ddd.pow(0.7 * r10));
        x_v = register_parameter("x_v", 1.0 - ddd.pow(0.7 * r10));
        x_a = register_parameter("x_a", 1.0 - ddd.pow(0.9 * r10));
        x_g = register_parameter("x_g", 1.0 - ddd.pow(0.2 * r10));

        Tensor n = torch::arange(C_, torch::kFloat32);
        Tensor linear = n / double(C_ - 1 > 0 ? C_ - 1 : 1) - 0.5;
        Tensor zigzag = (torch::fmod(n, double(N_)) - (N_ - 1) / 2.0) / ((N_ - 1) / 2.0);
        zigzag = zigzag * zigzag.abs();
        Tensor www = -6.0 + 6.0 * (n / double(C_ - 1 > 0 ? C_ - 1 : 1)).pow(1.0 + std::pow(r01, 0.3));

        w0 = register_parameter("w0", (www + 0.5 + zigzag * 2.5).reshape({1, 1, C_}));
        w1 = register_parameter("w1", torch::zeros({C_, d_decay}));
        w2 = register_parameter("w2", ortho({d_decay, C_}, 0.1));
        a0 = register_parameter("a0", (-0.19 + zigzag * 0.3 + linear * 0.4).reshape({1, 1, C_}));
        a1 = register_parameter("a1", torch::zeros({C_, d_a}));
        a2 = register_parameter("a2", ortho({d_a, C_}, 0.1));
        if (layer_ > 0) { // layer 0 produces v_first; later layers mix towards it
            v0 = register_parameter("v0", (0.73 - linear * 0.4).reshape({1, 1, C_}));
            v1 = register_parameter("v1", torch::zeros({C_, d_v}));
            v2 = register_parameter("v2", ortho({d_v, C_}, 0.1));
        }
        g1 = register_parameter("g1", torch::zeros({C_, d_gate}));
        g2 = register_parameter("g2", ortho({d_gate, C_}, 0.1));
        k_k = register_parameter("k_k", (0.71 - linear * 0.1).reshape({1, 1, C_}));
        k_a = register_parameter("k_a", torch::full({1, 1, C_}, 1.02));
        r_k = register_parameter("r_k", torch::full({H_, N_}, -0.04));

        auto lin = [&](const char *name) {
            return register_module(name, torch::nn::Linear(torch::nn::LinearOptions(C_, C_).bias(false)));
        };
        receptance = lin("receptance");
        key = lin("key");
        value = lin("value");
        output = lin("output");
        const double s = 1.0 / std::sqrt(double(C_));
        receptance->weight.uniform_(-0.5 * s, 0.5 * s);
        key->weight.uniform_(-0.05 * s, 0.05 * s);
        value->weight.uniform_(-0.5 * s, 0.5 * s);
        output->weight.zero_();
        ln_x = register_module("ln_x", torch::nn::GroupNorm(torch::nn::GroupNormOptions(H_, C_).eps(64e-5)));
        ln_x->weight.fill_(std::pow((1.0 + double(ctx.layer)) / L, 0.7));
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &ctx) override {
        const int64_t B = x.size(0), T = x.size(1), C = C_, H = H_, N = N_;
        const bool has_state = state && state->size() == 2;
        Tensor xx = cdrmix::shift_tokens(x, has_state ? (*state)[0] : Tensor()) - x;
        Tensor xr = x + xx * x_r, xw = x + xx * x_w, xk = x + xx * x_k;
        Tensor xv = x + xx * x_v, xa = x + xx * x_a, xg = x + xx * x_g;

        Tensor r = receptance(xr);
        // exp(-exp(w)) with w = -softplus(-w_raw) - 0.5, i.e. exp(-e^-0.5 * sigmoid(w_raw)): decay in (0.545, 1).
        Tensor decay = torch::exp(-std::exp(-0.5) * torch::sigmoid(w0 + torch::tanh(xw.matmul(w1)).matmul(w2)));
        Tensor k = key(xk);
        Tensor v = value(xv);
        if (layer_ == 0 || !ctx.v_first.defined()) ctx.v_first = v;
        else v = v + (ctx.v_first - v) * torch::sigmoid(v0 + xv.matmul(v1).matmul(v2));
        Tensor a = torch::sigmoid(a0 + xa.matmul(a1).matmul(a2));
        Tensor g = torch::sigmoid(xg.matmul(g1)).matmul(g2);

        Tensor kk = torch::nn::functional::normalize((k * k_k).view({B, T, H, N}),
                                                     torch::nn::functional::NormalizeFuncOptions().p(2.0).dim(-1));
        k = k * (1.0 + (a - 1.0) * k_a);

        auto heads = [&](const Tensor &t) { return t.reshape({B, T, H, N}); };
        Tensor ah = heads(a);
        auto [y, s_final] = cdrmix::ops::wkv7(heads(r), heads(decay), heads(k), heads(v), -kk, kk * ah,
                                              has_state ? (*state)[1] : Tensor());
        Tensor out = ln_x(y.reshape({B * T, C})).view({B, T, C});
        out = out + ((heads(r) * heads(k) * r_k).sum(-1, true) * heads(v)).view({B, T, C});
        if (state) *state = {x.select(1, T - 1), s_final};
        return output(out * g);
    }

private:
    static Tensor ortho(std::vector<int64_t> shape, double scale) {
        Tensor t = torch::empty(shape);
        const double gain = shape[0] > shape[1] ? std::sqrt(double(shape[0]) / double(shape[1])) : 1.0;
        torch::nn::init::orthogonal_(t, gain * scale);
        return t;
    }

    int64_t layer_, C_, N_, H_;
    Tensor x_r, x_w, x_k, x_v, x_a, x_g, w0, w1, w2, a0, a1, a2, v0, v1, v2, g1, g2, k_k, k_a, r_k;
    torch::nn::Linear receptance{nullptr}, key{nullptr}, value{nullptr}, output{nullptr};
    torch::nn::GroupNorm ln_x{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("RWKV-7 time mixing: WKV state per head, value residual, LoRA decay");
    s.integer("head_size", 64, "channels per head N (hidden_size must be a multiple)").min(1);
    // The ranks' defaults come from the width C (rwkv7_lora_rank), so they are described, not given.
    s.integer("decay_lora", nullptr, "rank of the decay LoRA")
        .min(1)
        .default_is("max(32, round_half_even(2.5 sqrt(C) / 32) * 32)");
    s.integer("a_lora", nullptr, "rank of the in-context learning rate LoRA")
        .min(1)
        .default_is("max(32, round_half_even(2.5 sqrt(C) / 32) * 32)");
    s.integer("v_lora", nullptr, "rank of the value-residual LoRA")
        .min(1)
        .default_is("max(32, round_half_even(1.7 sqrt(C) / 32) * 32)");
    s.integer("gate_lora", nullptr, "rank of the output gate LoRA")
        .min(1)
        .default_is("max(32, round_half_even(5 sqrt(C) / 32) * 32)");
    return s;
}

} // namespace

CDRMIX_PLUGIN("rwkv7_time_mix", "1.0.0", "RWKV-7 time mixing (generalised delta rule, fused WKV op)") {
    const cdrmix::Schema s = schema();
    registry.add_block("rwkv7_time_mix", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<RWKV7TimeMix>(c, ctx);
                       });
}
