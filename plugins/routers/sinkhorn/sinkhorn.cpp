// Sinkhorn router (S-BASE, Clark et al. 2022; Megatron-LM's "sinkhorn" balancing).
// The choice comes from a balanced version of the token-expert affinities: under
// no_grad, C = exp(logits - max) [N,E] is scaled by row factors d0 and column
// factors d1, alternating
//   d0 = 1 / (N * (C d1)),   d1 = 1 / (E * (d0^T C))
// until mean |d1 - d1_prev| < tol (or max_iters), so diag(d0) C diag(d1) has rows
// summing to 1/N and columns to 1/E: every expert is wanted by an equal share of
// the batch. Each token takes the top_k experts of that balanced matrix. Gates:
// p = softmax(logits) at the chosen experts (differentiable), renormalised to sum
// to 1 when top_k > 1 (with top_k = 1 the gate is p itself: renormalising would
// make it 1 and cut the router's gradient).
// The balancing needs the whole batch, so while decoding the choice is the plain
// top_k of the logits. No auxiliary loss. top_k is the MoE layer's (RouterContext).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

namespace {

using torch::Tensor;

class SinkhornRouter : public cdrmix::Router {
public:
    SinkhornRouter(const cdrmix::Config &cfg, const cdrmix::RouterContext &ctx) : E_(ctx.num_experts), k_(ctx.top_k) {
        if (k_ < 1 || k_ > E_)
            throw cdrmix::Error(cfg.where() + ": top_k must be between 1 and num_experts (" + std::to_string(E_) +
                                "), got " + std::to_string(k_));
        tol_ = cfg.get_double("tol");
        max_iters_ = cfg.get_int("max_iters");
        if (!(tol_ > 0)) throw cdrmix::Error(cfg.where() + ": key 'tol' must be positive");
        gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(ctx.hidden_size, E_).bias(false)));
        torch::NoGradGuard no_grad;
        gate->weight.normal_(0.0, 0.02);
    }

    cdrmix::RouterOutput route(const Tensor &x, const cdrmix::RouteInput &in) override {
        Tensor logits = gate(x);
        if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
        Tensor probs = torch::softmax(logits, -1);
        Tensor top_i = std::get<1>((in.decoding ? logits.detach() : balanced(logits)).topk(k_, -1));
        Tensor chosen = probs.gather(1, top_i);
        cdrmix::RouterOutput out;
        out.indices = top_i;
        out.weights = k_ > 1 ? chosen / chosen.sum(-1, true) : chosen;
        out.probs = probs.detach();
        return out;
    }

    int64_t num_experts() const override { return E_; }
    int64_t top_k() const override { return k_; }

private:
    // diag(d0) exp(logits) diag(d1) with rows summing to 1/N and columns to 1/E.
    Tensor balanced(const Tensor &logits) const {
        torch::NoGradGuard no_grad;
        // Subtracting the global max changes only a common scale, which d0 absorbs.
        Tensor cost = (logits - logits.max()).exp();
        const int64_t N = cost.size(0);
        const double eps = 1e-8; // Megatron's guard against an all-underflowed row or column
        Tensor d0 = torch::ones({N}, cost.options());
        Tensor d1 = torch::ones({E_}, cost.options());
        for (int64_t it = 0; it < max_iters_; ++it) {
            d0 = 1.0 / (double(N) * (cost.matmul(d1) + eps));
            Tensor next = 1.0 / (double(E_) * (d0.matmul(cost) + eps));
            const double change = (next - d1).abs().mean().item<double>();
            d1 = next;
            if (change < tol_) break;
        }
        return cost * d0.unsqueeze(1) * d1.unsqueeze(0);
    }

    int64_t E_, k_, max_iters_;
    double tol_;
    torch::nn::Linear gate{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Top-k of a Sinkhorn-balanced affinity matrix (S-BASE); plain top-k while decoding");
    s.number("tol", 1e-4, "stop when the mean change of the column factors falls below this (positive)");
    s.integer("max_iters", 50, "most Sinkhorn iterations per call").min(1);
    return s;
}

} // namespace

CDRMIX_PLUGIN("sinkhorn", "1.0.0", "Sinkhorn-balanced top-k router (S-BASE)") {
    const cdrmix::Schema s = schema();
    registry.add_router("sinkhorn", s.doc(), s,
                        [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) {
                            return std::make_shared<SinkhornRouter>(c, ctx);
                        });
}
