// Switch Transformer router (Fedus et al. 2021): top-1 softmax. Per token
// p = softmax(W x) over E experts; the token goes to argmax p with combine weight
// p_max itself (not renormalised, which would make it 1 and cut the router's
// gradient). Auxiliary losses, in training mode only:
//   load_balance = alpha * E * sum_i f_i P_i   (alpha when balanced; cdrmix::load_balance_loss)
//   z_loss       = beta * mean(logsumexp(logits)^2)   (ST-MoE; cdrmix::router_z_loss)
// Optional multiplicative jitter: x * U(1 - eps, 1 + eps) during training.
// Registered with default_top_k 1, so an MoE layer that sets no top_k asks for
// one expert; a layer that asks for more is refused when the router is built.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

namespace {

using torch::Tensor;

class SwitchRouter : public cdrmix::Router {
public:
    SwitchRouter(const cdrmix::Config &cfg, const cdrmix::RouterContext &ctx) : E_(ctx.num_experts) {
        if (ctx.top_k != 1)
            throw cdrmix::Error(cfg.where() + ": the switch router sends each token to one expert; the MoE layer has "
                                              "top_k " + std::to_string(ctx.top_k) + ": set top_k = 1 or leave it unset");
        alpha_ = cfg.get_double("load_balance_alpha");
        z_coef_ = cfg.get_double("z_loss");
        jitter_ = cfg.get_double("jitter");
        if (jitter_ >= 1) throw cdrmix::Error(cfg.where() + ": key 'jitter' must be below 1");
        gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(ctx.hidden_size, E_).bias(false)));
        torch::NoGradGuard no_grad;
        gate->weight.normal_(0.0, 0.02);
    }

    cdrmix::RouterOutput route(const Tensor &x_in, const cdrmix::RouteInput &) override {
        Tensor x = x_in;
        if (is_training() && jitter_ > 0) x = x * torch::empty_like(x).uniform_(1.0 - jitter_, 1.0 + jitter_);
        // Selective precision (Switch): routing in float32 at least, whatever the activations' dtype.
        Tensor logits = gate(x);
        if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
        Tensor probs = torch::softmax(logits, -1);
        auto [top_p, top_i] = probs.max(-1, /*keepdim=*/true);
        cdrmix::RouterOutput out;
        out.indices = top_i;
        out.weights = top_p;
        out.probs = probs.detach();
        if (is_training()) {
            if (alpha_ > 0) out.losses.push_back({"load_balance", cdrmix::load_balance_loss(probs, top_i, E_, alpha_)});
            if (z_coef_ > 0) out.losses.push_back({"z_loss", cdrmix::router_z_loss(logits, z_coef_)});
        }
        return out;
    }

    int64_t num_experts() const override { return E_; }
    int64_t top_k() const override { return 1; }

private:
    int64_t E_;
    double alpha_, z_coef_, jitter_;
    torch::nn::Linear gate{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Top-1 softmax router (Switch Transformer load balance, ST-MoE z-loss, jitter)");
    s.number("load_balance_alpha", 0.01, "coefficient of the load-balance loss (0: off)").min(0);
    s.number("z_loss", 0.001, "coefficient of the router z-loss (0: off)").min(0);
    s.number("jitter", 0.0, "multiplicative input noise U(1 - eps, 1 + eps) in training, eps in [0, 1)").min(0);
    return s;
}

} // namespace

CDRMIX_PLUGIN("switch", "1.0.0", "Switch Transformer top-1 router with load-balance and z-loss") {
    const cdrmix::Schema s = schema();
    registry.add_router(
        "switch", s.doc(), s,
        [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) { return std::make_shared<SwitchRouter>(c, ctx); },
        /*default_top_k=*/1);
}
