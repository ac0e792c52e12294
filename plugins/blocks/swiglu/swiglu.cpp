// SwiGLU feed-forward network (Shazeer 2020, as in LLaMA and TardBot):
// out = w2(silu(w1 x) * w3 x), no biases. The hidden size is round(expansion * C)
// rounded up to a multiple of 8 (LLaMA's multiple_of), so the default 8/3
// keeps the parameter count of a 4x two-matrix FFN (C = 64: 176, C = 128: 344).
// Initialisation: w1 and w3 LibTorch's Linear default (uniform in +-1/sqrt(C)),
// w2 zero, so a residual stack of these blocks starts as the identity.
// Purely token-wise, so it serves as an MoE expert as it is.
// State: none (the carried state is left empty).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

using torch::Tensor;

class SwiGLU : public cdrmix::Block {
public:
    SwiGLU(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        const double expansion = cfg.get_double("expansion");
        // Round first, then up to a multiple of 8 in integers, so 8/3 * C never gains 8 from rounding error.
        const int64_t hidden = (static_cast<int64_t>(std::lround(expansion * double(C))) + 7) / 8 * 8;
        if (hidden <= 0) throw cdrmix::Error(cfg.where() + ": key 'expansion' must be positive");
        auto lin = [&](const char *name, int64_t in, int64_t out) {
            return register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
        };
        w1 = lin("w1", C, hidden);
        w2 = lin("w2", hidden, C);
        w3 = lin("w3", C, hidden);
        torch::NoGradGuard no_grad;
        w2->weight.zero_();
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        if (state) state->clear(); // nothing depends on earlier tokens
        return forward_tokens(x);
    }

    bool tokenwise() const override { return true; }
    Tensor forward_tokens(const Tensor &x) override { return w2(torch::silu(w1(x)) * w3(x)); }

private:
    torch::nn::Linear w1{nullptr}, w2{nullptr}, w3{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("SwiGLU FFN: w2(silu(w1 x) * w3 x), token-wise");
    s.number("expansion", 8.0 / 3.0, "hidden size over hidden_size, before rounding up to a multiple of 8").min(0);
    return s;
}

} // namespace

CDRMIX_PLUGIN("swiglu", "1.0.0", "SwiGLU FFN (LLaMA / TardBot)") {
    const cdrmix::Schema s = schema();
    registry.add_block("swiglu", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<SwiGLU>(c, ctx);
                       });
}
