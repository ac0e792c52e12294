// RWKV-7 channel mixing: k = relu(W_k (x + (x_{t-1} - x) * x_k))^2, out = W_v k,
// hidden size expansion * C (reference: 4). Token-wise apart from the shift, so
// it is the default MoE expert: as an expert the MoE layer applies the shift once
// and each expert runs W_v relu(W_k x)^2 on its tokens.
// With `receptance: true` it becomes RWKV-4..6's channel mixing: a sigmoid gate
// from its own token-shift mix, out = sigmoid(W_r (x + (x_{t-1} - x) * x_r)) * W_v k,
// W_r zero-initialised and x_r = 1 - ddd^r as in RWKV_CMix_x060. The gate needs
// the shifted token, which the MoE layer owns, so experts reject the option.
// State: {previous token's x [B,C]}.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

using torch::Tensor;

class RWKVChannelMix : public cdrmix::Block {
public:
    RWKVChannelMix(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        const double expansion = cfg.get_double("expansion");
        const int64_t hidden = static_cast<int64_t>(std::lround(expansion * double(C)));
        if (hidden <= 0) throw cdrmix::Error(cfg.where() + ": key 'expansion' must be positive");
        const bool gated = cfg.get_bool("receptance");
        if (gated && ctx.expert)
            throw cdrmix::Error(cfg.where() + ": key 'receptance' is not supported in an MoE expert (the gate needs "
                                              "the token shift, which the MoE layer owns)");
        torch::NoGradGuard no_grad;
        const double r10 = 1.0 - double(ctx.layer) / double(ctx.num_layers);
        if (!ctx.expert)
            x_k = register_parameter("x_k", 1.0 - cdrmix::channel_ramp(C).pow(std::pow(r10, 4.0)));
        key = register_module("key", torch::nn::Linear(torch::nn::LinearOptions(C, hidden).bias(false)));
        value = register_module("value", torch::nn::Linear(torch::nn::LinearOptions(hidden, C).bias(false)));
        key->weight.uniform_(-0.5 / std::sqrt(double(C)), 0.5 / std::sqrt(double(C)));
        value->weight.zero_();
        if (gated) {
            x_r = register_parameter("x_r", 1.0 - cdrmix::channel_ramp(C).pow(r10));
            receptance = register_module("receptance", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(false)));
            receptance->weight.zero_();
        }
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        TORCH_CHECK(x_k.defined(), "rwkv_channel_mix built as an MoE expert has no token shift; use forward_tokens");
        const bool has_state = state && state->size() == 1;
        Tensor xx = cdrmix::shift_tokens(x, has_state ? (*state)[0] : Tensor()) - x;
        if (state) *state = {x.select(1, x.size(1) - 1)};
        Tensor out = forward_tokens(x + xx * x_k);
        if (receptance) out = torch::sigmoid(receptance(x + xx * x_r)) * out;
        return out;
    }

    // The receptance gate reads the shifted token, which forward_tokens never sees.
    bool tokenwise() const override { return !receptance; }
    Tensor forward_tokens(const Tensor &x) override { return value(torch::relu(key(x)).square()); }

private:
    Tensor x_k, x_r;
    torch::nn::Linear key{nullptr}, value{nullptr}, receptance{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("RWKV-7 channel mixing: W_v relu(W_k shifted x)^2");
    s.number("expansion", 4.0, "hidden size over hidden_size (rounded to an integer)").min(0);
    s.boolean("receptance", false, "RWKV-4..6 sigmoid receptance gate on the output (not in an MoE expert)");
    return s;
}

} // namespace

CDRMIX_PLUGIN("rwkv_channel_mix", "1.0.0", "RWKV-7 channel mixing (squared-ReLU FFN with token shift)") {
    const cdrmix::Schema s = schema();
    registry.add_block("rwkv_channel_mix", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<RWKVChannelMix>(c, ctx);
                       });
}
