#include <cdrmix/router.hpp>

#include <torch/torch.h>

#include <cmath>

namespace cdrmix {

torch::Tensor load_balance_loss(const torch::Tensor &probs, const torch::Tensor &indices, int64_t num_experts,
                                double alpha) {
    torch::Tensor ids = indices.reshape({-1});
    torch::Tensor filled = ids.masked_select(ids >= 0);
    // No filled slot: nothing is routed, so nothing is imbalanced.
    if (filled.numel() == 0) return probs.sum() * 0.0;
    torch::Tensor f = torch::bincount(filled, {}, num_experts).to(probs.dtype()) / double(filled.numel());
    torch::Tensor P = probs.mean(0);
    return alpha * double(num_experts) * (f * P).sum();
}

torch::Tensor router_z_loss(const torch::Tensor &logits, double coef) {
    return coef * torch::logsumexp(logits, -1).square().mean();
}

RouterStats compute_router_stats(const RouterOutput &out, int64_t num_experts, int64_t layer, int64_t dropped) {
    torch::NoGradGuard no_grad;
    RouterStats s;
    s.layer = layer;
    s.dropped_tokens = dropped;

    torch::Tensor ids = out.indices.reshape({-1}).cpu();
    torch::Tensor counts = torch::bincount(ids.masked_select(ids >= 0), {}, num_experts);
    s.tokens_per_expert.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + num_experts);

    const double log_e = std::log(static_cast<double>(std::max<int64_t>(num_experts, 2)));
    torch::Tensor p = out.probs.to(torch::kFloat64).clamp_min(1e-30);
    s.token_entropy = (-(p * p.log()).sum(-1)).mean().item<double>() / log_e;

    const double total = counts.sum().item<double>();
    torch::Tensor load = counts.to(torch::kFloat64);
    if (total > 0) {
        torch::Tensor q = load / total;
        torch::Tensor nz = q.masked_select(q > 0);
        s.load_entropy = (-(nz * nz.log()).sum()).item<double>() / log_e;
        const double mean = total / static_cast<double>(num_experts);
        s.load_cv = std::sqrt(((load - mean).pow(2)).mean().item<double>()) / mean;
    }
    s.dead_experts = (counts == 0).sum().item<int64_t>();
    for (const auto &l : out.losses) s.losses.emplace_back(l.name, l.value.item<double>());
    return s;
}

} // namespace cdrmix
