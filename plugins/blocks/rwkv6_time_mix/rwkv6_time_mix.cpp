// RWKV-6 "Finch" time mixing, after RWKV-LM's RWKV_Tmix_x060 (RWKV-v5/src/model.py):
// data-dependent token shift (ddlerp), LoRA-generated per-token decay, the u
// bonus for the current token, SiLU output gate and per-head GroupNorm. The WKV
// recurrence runs in the fused cdrmix::wkv6 op; state per head is N x N fp32.
//
//   xx = x_{t-1} - x;  xxx = x + xx * time_maa_x
//   (mw,mk,mv,mr,mg) = tanh(xxx @ time_maa_w1) @ time_maa_w2      (one [32,C] slice each)
//   x_q = x + xx * (time_maa_q + m_q)   for q in {w,k,v,r,g}
//   r = W_r x_r;  k = W_k x_k;  v = W_v x_v;  g = SiLU(W_g x_g)
//   decay = exp(-exp(time_decay + tanh(x_w @ time_decay_w1) @ time_decay_w2))
//   y = wkv6(r, decay, k, v, u = time_faaaa);  out = W_o(GroupNorm_H(y) * g)
//
// Parameter names, shapes and initialisation follow the reference, so its
// checkpoints map one to one: per-channel time_maa_{x,w,k,v,r,g} and time_decay
// are [1,1,C], time_maa_w1 [C,5*mix_lora], time_maa_w2 [5,mix_lora,C],
// time_decay_w1 [C,decay_lora], time_decay_w2 [decay_lora,C], time_faaaa [H,N].
// State: {previous token's x [B,C], WKV state [B,H,N,N] (rows: key index)}.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

using torch::Tensor;

class RWKV6TimeMix : public cdrmix::Block {
public:
    RWKV6TimeMix(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        C_ = ctx.hidden_size;
        N_ = cfg.get_int("head_size");
        if (C_ % N_ != 0)
            throw cdrmix::Error(cfg.where() + ": hidden_size " + std::to_string(C_) +
                                " must be a multiple of head_size " + std::to_string(N_));
        H_ = C_ / N_;
        D_mix_ = cfg.get_int("mix_lora");
        const int64_t d_decay = cfg.get_int("decay_lora");

        torch::NoGradGuard no_grad;
        const double L = double(ctx.num_layers);
        const double r01 = L > 1 ? double(ctx.layer) / (L - 1) : 0.0; // 0 at the first layer, 1 at the last
        const double r10 = 1.0 - double(ctx.layer) / L;                // 1 at the first layer, ~0 at the last
        Tensor ddd = cdrmix::channel_ramp(C_);
        time_maa_x = register_parameter("time_maa_x", 1.0 - ddd.pow(r10));
        time_maa_w = register_parameter("time_maa_w", 1.0 - ddd.pow(r10));
        time_maa_k = register_parameter("time_maa_k", 1.0 - ddd.pow(r10));
        time_maa_v = register_parameter("time_maa_v", 1.0 - (ddd.pow(r10) + 0.3 * r01));
        time_maa_r = register_parameter("time_maa_r", 1.0 - ddd.pow(0.5 * r10));
        time_maa_g = register_parameter("time_maa_g", 1.0 - ddd.pow(0.5 * r10));
        time_maa_w1 = register_parameter("time_maa_w1", torch::zeros({C_, 5 * D_mix_}));
        time_maa_w2 = register_parameter("time_maa_w2", torch::empty({5, D_mix_, C_}).uniform_(-0.01, 0.01));

        Tensor n = torch::arange(C_, torch::kFloat32);
        Tensor frac = n / double(C_ - 1 > 0 ? C_ - 1 : 1); // c / (C-1)
        time_decay = register_parameter("time_decay", (-6.0 + 5.0 * frac.pow(0.7 + 1.3 * r01)).reshape({1, 1, C_}));
        time_decay_w1 = register_parameter("time_decay_w1", torch::zeros({C_, d_decay}));
        time_decay_w2 = register_parameter("time_decay_w2", torch::empty({d_decay, C_}).uniform_(-0.01, 0.01));
        Tensor zigzag = (torch::fmod(n + 1, 3.0) - 1.0) * 0.1;
        time_faaaa = register_parameter("time_faaaa", (r01 * (1.0 - frac) + zigzag).reshape({H_, N_}));

        auto lin = [&](const char *name, double gain) {
            auto m = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(C_, C_).bias(false)));
            if (gain == 0.0) m->weight.zero_();
            else torch::nn::init::orthogonal_(m->weight, gain);
            return m;
        };
        receptance = lin("receptance", 1.0);
        key = lin("key", 0.1);
        value = lin("value", 1.0);
        output = lin("output", 0.0);
        gate = lin("gate", 0.1);
        ln_x = register_module("ln_x", torch::nn::GroupNorm(torch::nn::GroupNormOptions(H_, C_).eps(64e-5)));
        ln_x->weight.fill_(std::pow((1.0 + double(ctx.layer)) / L, 0.7));
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        const int64_t B = x.size(0), T = x.size(1), C = C_, H = H_, N = N_;
        const bool has_state = state && state->size() == 2;
        Tensor xx = cdrmix::shift_tokens(x, has_state ? (*state)[0] : Tensor()) - x;
        Tensor xxx = x + xx * time_maa_x;
        // [B*T, 5*D] -> [5, B*T, D] @ [5, D, C] -> five [B,T,C] mix offsets.
        Tensor m = torch::tanh(xxx.matmul(time_maa_w1)).view({B * T, 5, D_mix_}).transpose(0, 1);
        auto mix = torch::bmm(m, time_maa_w2).view({5, B, T, C}).unbind(0);
        Tensor xw = x + xx * (time_maa_w + mix[0]), xk = x + xx * (time_maa_k + mix[1]);
        Tensor xv = x + xx * (time_maa_v + mix[2]), xr = x + xx * (time_maa_r + mix[3]);
        Tensor xg = x + xx * (time_maa_g + mix[4]);

        Tensor r = receptance(xr), k = key(xk), v = value(xv);
        Tensor g = torch::silu(gate(xg));
        Tensor decay = torch::exp(-torch::exp(time_decay + torch::tanh(xw.matmul(time_decay_w1)).matmul(time_decay_w2)));

        auto heads = [&](const Tensor &t) { return t.reshape({B, T, H, N}); };
        auto [y, s_final] = cdrmix::ops::wkv6(heads(r), heads(decay), heads(k), heads(v), time_faaaa,
                                              has_state ? (*state)[1] : Tensor());
        Tensor out = ln_x(y.reshape({B * T, C})).view({B, T, C});
        if (state) *state = {x.select(1, T - 1), s_final};
        return output(out * g);
    }

private:
    int64_t C_, N_, H_, D_mix_;
    Tensor time_maa_x, time_maa_w, time_maa_k, time_maa_v, time_maa_r, time_maa_g, time_maa_w1, time_maa_w2;
    Tensor time_decay, time_decay_w1, time_decay_w2, time_faaaa;
    torch::nn::Linear receptance{nullptr}, key{nullptr}, value{nullptr}, output{nullptr}, gate{nullptr};
    torch::nn::GroupNorm ln_x{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("RWKV-6 time mixing: ddlerp token shift, LoRA decay, u bonus");
    s.integer("head_size", 64, "channels per head N (hidden_size must be a multiple)").min(1);
    s.integer("mix_lora", 32, "rank of the token-shift mixing LoRA (time_maa_w1/w2)").min(1);
    s.integer("decay_lora", 64, "rank of the decay LoRA (time_decay_w1/w2)").min(1);
    return s;
}

} // namespace

CDRMIX_PLUGIN("rwkv6_time_mix", "1.0.0", "RWKV-6 time mixing (data-dependent decay and token shift, fused WKV op)") {
    const cdrmix::Schema s = schema();
    registry.add_block("rwkv6_time_mix", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<RWKV6TimeMix>(c, ctx);
                       });
}
