// Top-k softmax router (Switch / GShard). Per token: p = softmax(W x) over E
// experts, keep the k largest (renormalised to sum to 1 unless normalize=false).
// Auxiliary losses:
//   load_balance = alpha * E * sum_i f_i P_i   (f_i: share of routed slots sent to
//                  expert i, P_i: mean router probability of expert i; 1*alpha when balanced)
//   z_loss       = beta * mean(logsumexp(logits)^2)   (ST-MoE: keeps logits small)
// Optional multiplicative jitter noise on the input during training.
// k is the MoE layer's top_k (RouterContext).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

namespace {

using torch::Tensor;

class TopKRouter : public cdrmix::Router {
public:
    TopKRouter(const cdrmix::Config &cfg, const cdrmix::RouterContext &ctx) : E_(ctx.num_experts), k_(ctx.top_k) {
        if (k_ < 1 || k_ > E_)
            throw cdrmix::Error(cfg.where() + ": top_k must be between 1 and num_experts (" + std::to_string(E_) +
                                "), got " + std::to_string(k_));
        alpha_ = cfg.get_double("load_balance_alpha");
        z_coef_ = cfg.get_double("z_loss");
        jitter_ = cfg.get_double("jitter");
        normalize_ = cfg.get_bool("normalize");
        gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(ctx.hidden_size, E_).bias(false)));
        torch::NoGradGuard no_grad;
        gate->weight.normal_(0.0, 0.02);
    }

    cdrmix::RouterOutput route(const Tensor &x_in, const cdrmix::RouteInput &) override {
        Tensor x = x_in;
        if (is_training() && jitter_ > 0) x = x * torch::empty_like(x).uniform_(1.0 - jitter_, 1.0 + jitter_);
        // Routing decisions are made in float32 at least, whatever the activations' dtype.
        Tensor logits = gate(x);
        if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
        Tensor probs = torch::softmax(logits, -1);
        auto [top_p, top_i] = probs.topk(k_, -1);
        cdrmix::RouterOutput out;
        out.indices = top_i;
        out.weights = normalize_ ? top_p / top_p.sum(-1, true) : top_p;
        out.probs = probs.detach();
        if (is_training()) {
            if (alpha_ > 0) out.losses.push_back({"load_balance", cdrmix::load_balance_loss(probs, top_i, E_, alpha_)});
            if (z_coef_ > 0) out.losses.push_back({"z_loss", cdrmix::router_z_loss(logits, z_coef_)});
        }
        return out;
    }

    int64_t num_experts() const override { return E_; }
    int64_t top_k() const override { return k_; }

private:
    int64_t E_, k_;
    double alpha_, z_coef_, jitter_;
    bool normalize_;
    torch::nn::Linear gate{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Top-k softmax router (Switch/GShard load balance, ST-MoE z-loss, jitter)");
    s.number("load_balance_alpha", 0.01, "coefficient of the load-balance loss (0: off)").min(0);
    s.number("z_loss", 0.001, "coefficient of the router z-loss (0: off)").min(0);
    s.number("jitter", 0.0, "multiplicative input noise U(1 - eps, 1 + eps) in training (0: off)").range(0, 1);
    s.boolean("normalize", true, "renormalise the k chosen probabilities to sum to 1");
    return s;
}

} // namespace

CDRMIX_PLUGIN("topk", "1.0.0", "Top-k softmax router with Switch load-balance and z-loss") {
    const cdrmix::Schema s = schema();
    registry.add_router("topk", s.doc(), s,
                        [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) {
                            return std::make_shared<TopKRouter>(c, ctx);
                        });
}
