#include <cdrmix/router.hpp>

#include <torch/torch.h>

#include <algorithm>
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

std::vector<RouterStats> compute_router_stats(const std::vector<RoutingRecord> &records) {
    return compute_router_stats(records, nullptr);
}

std::vector<RouterStats> compute_router_stats(const std::vector<RoutingRecord> &records,
                                              const std::function<void(torch::Tensor &)> &sum_over_ranks) {
    torch::NoGradGuard no_grad;
    // Pool the records of each layer, in order of first appearance.
    std::vector<int64_t> layers;
    std::vector<std::vector<const RoutingRecord *>> pooled;
    for (const auto &r : records) {
        auto it = std::find(layers.begin(), layers.end(), r.layer);
        if (it == layers.end()) {
            layers.push_back(r.layer);
            pooled.emplace_back();
            it = layers.end() - 1;
        }
        pooled[static_cast<size_t>(it - layers.begin())].push_back(&r);
    }
    // Per layer, on the records' device: [counts (E), summed token entropy, tokens, dropped, records, sum of each
    // loss]: sums, so that processes can add theirs.
    // Everything goes to the host in one transfer.
    std::vector<torch::Tensor> parts;
    for (const auto &group : pooled) {
        const int64_t E = group.front()->num_experts;
        std::vector<torch::Tensor> ids, probs;
        torch::Tensor dropped;
        for (const RoutingRecord *r : group) {
            ids.push_back(r->indices.reshape({-1}));
            probs.push_back(r->probs);
            torch::Tensor d = (r->indices >= 0).sum(1).eq(0).sum();
            dropped = dropped.defined() ? dropped + d : d;
        }
        torch::Tensor all_ids = torch::cat(ids);
        // Empty slots (-1) land in bin E, which is cut off: no data-dependent shape, so no sync.
        torch::Tensor bins = torch::where(all_ids >= 0, all_ids, torch::full_like(all_ids, E));
        torch::Tensor counts = torch::zeros({E + 1}, all_ids.options().dtype(torch::kFloat64))
                                   .scatter_add_(0, bins, torch::ones_like(bins, torch::kFloat64))
                                   .slice(0, 0, E);
        torch::Tensor p = torch::cat(probs).to(torch::kFloat64).clamp_min(1e-30);
        torch::Tensor entropy = (-(p * p.log()).sum(-1)).sum();
        parts.push_back(counts);
        parts.push_back(torch::stack({entropy, torch::full({}, double(p.size(0)), p.options()), dropped.to(p.options()),
                                      torch::full({}, double(group.size()), p.options())}));
        for (const auto &l : group.front()->losses) {
            torch::Tensor sum = torch::zeros({}, p.options());
            for (const RoutingRecord *r : group)
                for (const auto &other : r->losses)
                    if (other.name == l.name) sum = sum + other.value.to(p.options());
            parts.push_back(sum.reshape({1}));
        }
    }
    std::vector<RouterStats> out;
    if (parts.empty()) return out;
    torch::Tensor host = torch::cat(parts).cpu().contiguous();
    if (sum_over_ranks) sum_over_ranks(host);
    const double *v = host.data_ptr<double>();
    for (size_t g = 0; g < pooled.size(); ++g) {
        const RoutingRecord &first = *pooled[g].front();
        const int64_t E = first.num_experts;
        RouterStats s;
        s.layer = first.layer;
        double total = 0;
        for (int64_t e = 0; e < E; ++e) {
            s.tokens_per_expert.push_back(static_cast<int64_t>(v[e]));
            total += v[e];
            if (v[e] == 0) ++s.dead_experts;
        }
        v += E;
        const double log_e = std::log(static_cast<double>(std::max<int64_t>(E, 2)));
        s.token_entropy = v[1] > 0 ? v[0] / v[1] / log_e : 0.0;
        s.dropped_tokens = static_cast<int64_t>(v[2]);
        const double num_records = v[3];
        v += 4;
        if (total > 0) {
            const double mean = total / static_cast<double>(E);
            double h = 0, var = 0;
            for (int64_t c : s.tokens_per_expert) {
                const double q = double(c) / total;
                if (q > 0) h -= q * std::log(q);
                var += (double(c) - mean) * (double(c) - mean);
            }
            s.load_entropy = h / log_e;
            s.load_cv = std::sqrt(var / double(E)) / mean;
        }
        for (const auto &l : first.losses) s.losses.emplace_back(l.name, *v++ / num_records);
        out.push_back(std::move(s));
    }
    return out;
}

} // namespace cdrmix
