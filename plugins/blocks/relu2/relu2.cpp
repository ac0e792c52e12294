// Squared-ReLU feed-forward network (Primer; RWKV channel mixing without the
// token shift): out = W_value relu(W_key x)^2, hidden size round(expansion * C).
// Purely token-wise, so it serves as an MoE expert as it is; the parameter
// names match rwkv_channel_mix so weights move between the two.
// Initialisation as RWKV-LM: key uniform in +-0.5/sqrt(C), value zero (a
// residual stack of these blocks starts as the identity).
// State: none (the carried state is left empty).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

using torch::Tensor;

class ReLU2 : public cdrmix::Block {
public:
    ReLU2(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        const double expansion = cfg.get_double("expansion");
        const int64_t hidden = static_cast<int64_t>(std::lround(expansion * double(C)));
        if (hidden <= 0) throw cdrmix::Error(cfg.where() + ": key 'expansion' must be positive");
        key = register_module("key", torch::nn::Linear(torch::nn::LinearOptions(C, hidden).bias(false)));
        value = register_module("value", torch::nn::Linear(torch::nn::LinearOptions(hidden, C).bias(false)));
        torch::NoGradGuard no_grad;
        key->weight.uniform_(-0.5 / std::sqrt(double(C)), 0.5 / std::sqrt(double(C)));
        value->weight.zero_();
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        if (state) state->clear(); // nothing depends on earlier tokens
        return forward_tokens(x);
    }

    bool tokenwise() const override { return true; }
    Tensor forward_tokens(const Tensor &x) override { return value(torch::relu(key(x)).square()); }

private:
    torch::nn::Linear key{nullptr}, value{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Squared-ReLU FFN: W_value relu(W_key x)^2, token-wise");
    s.number("expansion", 4.0, "hidden size over hidden_size (rounded to an integer)").min(0);
    return s;
}

} // namespace

CDRMIX_PLUGIN("relu2", "1.0.0", "Squared-ReLU FFN (Primer / RWKV channel mix without token shift)") {
    const cdrmix::Schema s = schema();
    registry.add_block("relu2", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<ReLU2>(c, ctx);
                       });
}
