// Auxiliary-loss-free balancing (DeepSeek-V3; Wang et al. 2024). Affinities
// s = sigmoid(W x) (score_fn "sigmoid") or softmax(W x) ("softmax"), [N,E].
// Selection: top_k of s + b, where b is a per-expert bias buffer (state, not a
// parameter: no optimiser touches it). Combine weights come from the unbiased s
// of the chosen experts, normalised to sum to 1 (with top_k = 1 the weight is s
// itself: normalising would make it 1 and cut the router's gradient).
// Balancing: in training mode, after each route(), without gradient,
//   b_i += bias_update_rate * sign(mean_load - load_i)
// where load_i counts the slots sent to expert i in this call, so overloaded
// experts become less attractive and idle ones more.
// Optional complementary sequence-wise loss (DeepSeek-V3), in training mode:
//   seq_aux = alpha * mean over sequences of sum_i f_i P_i,
//   f_i = E / (k T) * #{t : i chosen for t},  P_i = mean_t s_{i,t} / sum_j s_{j,t}
// (alpha when balanced). The router sees the flattened batch, so a "sequence" is
// seq_length consecutive tokens (0: the whole call).
// probs (statistics) = s / sum_j s_j. top_k is the MoE layer's (RouterContext).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

namespace {

using torch::Tensor;

class AuxFreeRouter : public cdrmix::Router {
public:
    AuxFreeRouter(const cdrmix::Config &cfg, const cdrmix::RouterContext &ctx)
        : E_(ctx.num_experts), where_(cfg.where()), k_(ctx.top_k) {
        if (k_ < 1 || k_ > E_)
            throw cdrmix::Error(cfg.where() + ": top_k must be between 1 and num_experts (" + std::to_string(E_) +
                                "), got " + std::to_string(k_));
        sigmoid_ = cfg.get_string("score_fn") == "sigmoid";
        rate_ = cfg.get_double("bias_update_rate");
        seq_alpha_ = cfg.get_double("seq_aux_alpha");
        seq_length_ = cfg.get_int("seq_length");
        gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(ctx.hidden_size, E_).bias(false)));
        expert_bias = register_buffer("expert_bias", torch::zeros({E_}));
        torch::NoGradGuard no_grad;
        gate->weight.normal_(0.0, 0.02);
    }

    cdrmix::RouterOutput route(const Tensor &x, const cdrmix::RouteInput &) override {
        Tensor logits = gate(x);
        if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
        Tensor scores = sigmoid_ ? torch::sigmoid(logits) : torch::softmax(logits, -1);
        Tensor top_i = std::get<1>((scores.detach() + expert_bias.to(scores.dtype())).topk(k_, -1));
        Tensor chosen = scores.gather(1, top_i);
        cdrmix::RouterOutput out;
        out.indices = top_i;
        out.weights = k_ > 1 ? chosen / chosen.sum(-1, true) : chosen;
        Tensor normalised = scores / scores.sum(-1, true);
        out.probs = normalised.detach();
        if (is_training()) {
            if (seq_alpha_ > 0) out.losses.push_back({"seq_aux", sequence_loss(normalised, top_i)});
            update_bias(top_i);
        }
        return out;
    }

    int64_t num_experts() const override { return E_; }
    int64_t top_k() const override { return k_; }

private:
    Tensor sequence_loss(const Tensor &normalised, const Tensor &top_i) const {
        const int64_t N = normalised.size(0);
        const int64_t T = seq_length_ > 0 ? seq_length_ : N;
        if (N % T != 0)
            throw cdrmix::Error(where_ + ": " + std::to_string(N) + " tokens do not split into sequences of seq_length " +
                                std::to_string(T));
        const int64_t S = N / T;
        // counts[s, i]: slots of sequence s routed to expert i.
        Tensor seq_of = torch::arange(N, top_i.options()).div(T, "floor").unsqueeze(1).expand({N, k_});
        Tensor counts = torch::zeros({S * E_}, normalised.options())
                            .index_add_(0, (seq_of * E_ + top_i).reshape({-1}),
                                        torch::ones({N * k_}, normalised.options()))
                            .view({S, E_});
        Tensor f = counts * (double(E_) / double(k_ * T));
        Tensor P = normalised.view({S, T, E_}).mean(1);
        return seq_alpha_ * (f * P).sum(1).mean();
    }

    void update_bias(const Tensor &top_i) {
        if (rate_ == 0) return;
        torch::NoGradGuard no_grad;
        Tensor load = torch::bincount(top_i.reshape({-1}), {}, E_).to(expert_bias.dtype());
        expert_bias.add_(rate_ * torch::sign(load.mean() - load));
    }

    int64_t E_;
    std::string where_; // for errors raised while routing
    int64_t k_, seq_length_;
    bool sigmoid_;
    double rate_, seq_alpha_;
    torch::nn::Linear gate{nullptr};
    Tensor expert_bias;
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Sigmoid/softmax top-k router balanced by a per-expert selection bias (DeepSeek-V3)");
    s.string("score_fn", "sigmoid", "how logits become affinities s").one_of({"sigmoid", "softmax"});
    s.number("bias_update_rate", 1e-3, "step of the selection bias per route() in training (0: fixed bias)").min(0);
    s.number("seq_aux_alpha", 0.0, "coefficient of the sequence-wise balance loss (0: off)").min(0);
    s.integer("seq_length", 0, "tokens per sequence for seq_aux (0: the whole call)").min(0);
    return s;
}

} // namespace

CDRMIX_PLUGIN("aux_free", "1.0.0", "DeepSeek-V3 auxiliary-loss-free balancing router (bias on selection)") {
    const cdrmix::Schema s = schema();
    registry.add_router("aux_free", s.doc(), s,
                        [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) {
                            return std::make_shared<AuxFreeRouter>(c, ctx);
                        });
}
