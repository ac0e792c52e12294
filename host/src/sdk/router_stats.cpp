#include <cdrmix/router.hpp>

#include <torch/torch.h>

#include <cmath>

namespace cdrmix {

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
