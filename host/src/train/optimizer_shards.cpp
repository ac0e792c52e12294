#include "train/optimizer_shards.hpp"

#include "dist/gradient_sync.hpp"
#include "train/fused_adamw.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

namespace cdrmix {

OptimizerShards::OptimizerShards(std::vector<Part> parts) {
    for (auto &part : parts) {
        Shared s{part.group, std::move(part.params), {}, {}};
        s.owner.assign(s.params.size(), 0);
        s.owned.resize(size_t(s.group->world_size()));
        std::vector<size_t> order(s.params.size());
        std::iota(order.begin(), order.end(), size_t(0));
        // Largest first, each to the least loaded rank (ties: the lower rank, then the earlier parameter).
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t a, size_t b) { return s.params[a].numel() > s.params[b].numel(); });
        std::vector<int64_t> load(s.owned.size(), 0);
        for (size_t i : order) {
            const int r = int(std::min_element(load.begin(), load.end()) - load.begin());
            s.owner[i] = r;
            load[size_t(r)] += s.params[i].numel();
        }
        for (size_t i = 0; i < s.params.size(); ++i) s.owned[size_t(s.owner[i])].push_back(s.params[i]);
        parts_.push_back(std::move(s));
    }
}

void OptimizerShards::step(torch::optim::Optimizer &optimizer) {
    // The optimiser steps only parameters with a gradient: hide the others'.
    std::vector<std::pair<torch::Tensor, torch::Tensor>> hidden;
    for (auto &s : parts_)
        for (size_t i = 0; i < s.params.size(); ++i)
            if (s.owner[i] != s.group->rank() && s.params[i].grad().defined()) {
                hidden.emplace_back(s.params[i], s.params[i].grad());
                s.params[i].mutable_grad() = torch::Tensor();
            }
    optimizer.step();
    for (auto &[p, g] : hidden) p.mutable_grad() = g;
    for (auto &s : parts_)
        for (int r = 0; r < s.group->world_size(); ++r) broadcast_tensors(*s.group, s.owned[size_t(r)], r);
}

void OptimizerShards::consolidate(torch::optim::Optimizer &optimizer) {
    torch::NoGradGuard no_grad;
    for (auto &part : parts_) {
        ProcessGroup &group = *part.group;
        for (int r = 1; r < group.world_size(); ++r) {
            const auto &mine = part.owned[size_t(r)];
            if (mine.empty()) continue;
            // Each parameter's step (-1: no state yet, it never had a gradient), then the moments of those with state.
            torch::Tensor steps = torch::full({int64_t(mine.size())}, -1.0, torch::kFloat64);
            if (group.rank() == r)
                for (size_t k = 0; k < mine.size(); ++k)
                    if (auto *s = param_state(optimizer, mine[k]))
                        steps[int64_t(k)] = double(static_cast<torch::optim::AdamWParamState *>(s)->step());
            if (group.rank() == r) group.send(steps, 0);
            if (group.rank() == 0) group.recv(steps, r);
            if (group.rank() != r && group.rank() != 0) continue;
            for (size_t k = 0; k < mine.size(); ++k) {
                const double step = steps[int64_t(k)].item<double>();
                if (step < 0) continue;
                auto &s = adamw_state(optimizer, mine[k]); // the owner's own, or a new one on rank 0
                torch::Tensor moments = torch::cat({s.exp_avg().reshape({-1}), s.exp_avg_sq().reshape({-1})}).cpu();
                if (group.rank() == r) {
                    group.send(moments, 0);
                } else {
                    group.recv(moments, r);
                    const int64_t n = mine[k].numel();
                    s.exp_avg().copy_(moments.narrow(0, 0, n).view_as(mine[k]));
                    s.exp_avg_sq().copy_(moments.narrow(0, n, n).view_as(mine[k]));
                    s.step(int64_t(step));
                }
            }
        }
    }
}

void OptimizerShards::release(torch::optim::Optimizer &optimizer) {
    for (const auto &s : parts_)
        for (size_t i = 0; i < s.params.size(); ++i)
            if (s.owner[i] != s.group->rank()) erase_param_state(optimizer, s.params[i]);
}

} // namespace cdrmix
