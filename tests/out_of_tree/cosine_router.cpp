// An out-of-tree router, built only against the installed cdrmix SDK: cosine
// routing (as in X-MoE). Tokens are projected to a small space and compared with
// one learned unit vector per expert; logits = cos(token, expert) / temperature,
// then top-k softmax with the Switch load-balance loss. k is the MoE layer's
// top_k (RouterContext); the keys are declared once, in the schema below.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

namespace {

namespace F = torch::nn::functional;

class CosineRouter : public cdrmix::Router {
public:
    CosineRouter(const cdrmix::Config &cfg, const cdrmix::RouterContext &ctx)
        : experts_(ctx.num_experts), k_(ctx.top_k) {
        if (k_ < 1 || k_ > experts_)
            throw cdrmix::Error(cfg.where() + ": top_k must be between 1 and num_experts (" +
                                std::to_string(experts_) + "), got " + std::to_string(k_));
        const int64_t dim = cfg.get_int("dim");
        temperature_ = cfg.get_double("temperature");
        if (!(temperature_ > 0)) throw cdrmix::Error(cfg.where() + ": key 'temperature' must be positive");
        alpha_ = cfg.get_double("load_balance_alpha");
        proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(ctx.hidden_size, dim).bias(false)));
        centers = register_parameter("centers", torch::randn({experts_, dim}));
    }

    cdrmix::RouterOutput route(const torch::Tensor &x, const cdrmix::RouteInput &) override {
        auto unit = F::NormalizeFuncOptions().dim(-1);
        torch::Tensor logits = F::normalize(proj(x), unit).matmul(F::normalize(centers, unit).t()) / temperature_;
        torch::Tensor probs = torch::softmax(logits.to(torch::kFloat32), -1);
        auto [top_p, top_i] = probs.topk(k_, -1);
        cdrmix::RouterOutput out{top_i, top_p / top_p.sum(-1, true), probs.detach(), {}};
        if (is_training() && alpha_ > 0) {
            torch::Tensor f = torch::bincount(top_i.reshape({-1}), {}, experts_).to(torch::kFloat32) / double(top_i.numel());
            out.losses.push_back({"load_balance", alpha_ * double(experts_) * (f * probs.mean(0)).sum()});
        }
        return out;
    }

    int64_t num_experts() const override { return experts_; }
    int64_t top_k() const override { return k_; }

private:
    int64_t experts_, k_;
    double temperature_, alpha_;
    torch::nn::Linear proj{nullptr};
    torch::Tensor centers;
};

} // namespace

CDRMIX_PLUGIN("cosine", "0.1.0", "Cosine-similarity router (out-of-tree example)") {
    cdrmix::Schema s("Cosine routing against learned expert centres");
    s.integer("dim", 16, "size of the space tokens and expert centres are compared in").min(1);
    s.number("temperature", 0.3, "logits = cosine / temperature (positive)");
    s.number("load_balance_alpha", 0.01, "coefficient of the load-balance loss (0: off)").min(0);
    registry.add_router("cosine", s.doc(), s,
                        [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) {
                            return std::make_shared<CosineRouter>(c, ctx);
                        });
}
