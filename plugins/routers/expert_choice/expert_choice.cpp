// Expert Choice router (Zhou et al. 2022): experts pick tokens instead of tokens
// picking experts. S = softmax(W x) [N,E] over experts; each expert e takes the
// c tokens with the largest S[:, e], c = min(N, ceil(capacity_factor * N * top_k / E)),
// so every expert gets exactly its quota and a token may get anywhere from 0 to
// E experts. Output layout [N,E]: indices[n][e] = e when expert e chose token n,
// else -1; weights[n][e] = S[n][e] (differentiable; ignored where -1).
// The choice depends on the whole batch, so it is not causal: while decoding
// (RouteInput.decoding) the router falls back to token choice, the top_k experts
// of S per token with [N,top_k] output and the same unrenormalised weights, so
// the combine scale matches training.
// No auxiliary loss: balance holds by construction. top_k (the mean experts per
// token) is the MoE layer's (RouterContext).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace {

using torch::Tensor;

class ExpertChoiceRouter : public cdrmix::Router {
public:
    ExpertChoiceRouter(const cdrmix::Config &cfg, const cdrmix::RouterContext &ctx)
        : E_(ctx.num_experts), k_(ctx.top_k) {
        if (k_ < 1 || k_ > E_)
            throw cdrmix::Error(cfg.where() + ": top_k must be between 1 and num_experts (" + std::to_string(E_) +
                                "), got " + std::to_string(k_));
        capacity_factor_ = cfg.get_double("capacity_factor");
        if (!(capacity_factor_ > 0)) throw cdrmix::Error(cfg.where() + ": key 'capacity_factor' must be positive");
        gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(ctx.hidden_size, E_).bias(false)));
        torch::NoGradGuard no_grad;
        gate->weight.normal_(0.0, 0.02);
    }

    cdrmix::RouterOutput route(const Tensor &x, const cdrmix::RouteInput &in) override {
        Tensor logits = gate(x);
        if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
        Tensor scores = torch::softmax(logits, -1); // [N,E]
        cdrmix::RouterOutput out;
        out.probs = scores.detach();
        if (in.decoding) {
            auto [top_s, top_i] = scores.topk(k_, -1);
            out.indices = top_i;
            out.weights = top_s;
            return out;
        }
        const int64_t N = x.size(0);
        Tensor chosen = torch::zeros({N, E_}, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
        const int64_t c = capacity(N);
        if (c > 0) {
            Tensor token_of = std::get<1>(scores.detach().topk(c, /*dim=*/0)); // [c,E]: the tokens expert e takes
            chosen.scatter_(0, token_of, true);
        }
        Tensor expert_ids = torch::arange(E_, torch::TensorOptions().dtype(torch::kInt64).device(x.device())).expand({N, E_});
        out.indices = torch::where(chosen, expert_ids, torch::full_like(expert_ids, -1));
        out.weights = scores * chosen.to(scores.dtype());
        return out;
    }

    int64_t num_experts() const override { return E_; }
    int64_t top_k() const override { return k_; }

private:
    // Tokens each expert takes from a batch of n tokens.
    int64_t capacity(int64_t n) const {
        const auto c = static_cast<int64_t>(std::ceil(capacity_factor_ * double(n * k_) / double(E_)));
        return std::min(n, c);
    }

    int64_t E_, k_;
    double capacity_factor_;
    torch::nn::Linear gate{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Expert Choice routing (Zhou et al. 2022), perfectly balanced; token-choice top-k while decoding");
    s.number("capacity_factor", 1.0, "tokens per expert = ceil(capacity_factor * N * top_k / E), capped at N (positive)");
    return s;
}

} // namespace

CDRMIX_PLUGIN("expert_choice", "1.0.0", "Expert Choice router: each expert takes its top-c tokens") {
    const cdrmix::Schema s = schema();
    registry.add_router("expert_choice", s.doc(), s,
                        [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) {
                            return std::make_shared<ExpertChoiceRouter>(c, ctx);
                        });
}
