#include "train/optimizer_shards.hpp"

#include "dist/gradient_sync.hpp"
#include "train/fused_adamw.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

namespace cdrmix {

OptimizerShards::OptimizerShards(ProcessGroup &group, std::vector<torch::Tensor> params)
    : group_(group), params_(std::move(params)), owner_(params_.size(), 0),
      owned_(static_cast<size_t>(group.world_size())) {
    std::vector<size_t> order(params_.size());
    std::iota(order.begin(), order.end(), size_t(0));
    // Largest first, each to the least loaded rank (ties: the lower rank, then the earlier parameter).
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return params_[a].numel() > params_[b].numel(); });
    std::vector<int64_t> load(owned_.size(), 0);
    for (size_t i : order) {
        const int r = int(std::min_element(load.begin(), load.end()) - load.begin());
        owner_[i] = r;
        load[size_t(r)] += params_[i].numel();
    }
    for (size_t i = 0; i < params_.size(); ++i) owned_[size_t(owner_[i])].push_back(params_[i]);
}

void OptimizerShards::step(torch::optim::Optimizer &optimizer) {
    // The optimiser steps only parameters with a gradient: hide the others'.
    std::vector<std::pair<size_t, torch::Tensor>> hidden;
    for (size_t i = 0; i < params_.size(); ++i)
        if (owner_[i] != group_.rank() && params_[i].grad().defined()) {
            hidden.emplace_back(i, params_[i].grad());
            params_[i].mutable_grad() = torch::Tensor();
        }
    optimizer.step();
    for (auto &[i, g] : hidden) params_[i].mutable_grad() = g;
    for (int r = 0; r < group_.world_size(); ++r) broadcast_tensors(group_, owned_[size_t(r)], r);
}

void OptimizerShards::consolidate(torch::optim::Optimizer &optimizer) {
    torch::NoGradGuard no_grad;
    for (int r = 1; r < group_.world_size(); ++r) {
        const auto &mine = owned_[size_t(r)];
        if (mine.empty()) continue;
        // Each parameter's step (-1: no state yet, it never had a gradient), then the moments of those with state.
        torch::Tensor steps = torch::full({int64_t(mine.size())}, -1.0, torch::kFloat64);
        if (group_.rank() == r)
            for (size_t k = 0; k < mine.size(); ++k)
                if (auto *s = param_state(optimizer, mine[k]))
                    steps[int64_t(k)] = double(static_cast<torch::optim::AdamWParamState *>(s)->step());
        if (group_.rank() == r) group_.send(steps, 0);
        if (group_.rank() == 0) group_.recv(steps, r);
        if (group_.rank() != r && group_.rank() != 0) continue;
        for (size_t k = 0; k < mine.size(); ++k) {
            const double step = steps[int64_t(k)].item<double>();
            if (step < 0) continue;
            auto &s = adamw_state(optimizer, mine[k]); // the owner's own, or a new one on rank 0
            torch::Tensor moments = torch::cat({s.exp_avg().reshape({-1}), s.exp_avg_sq().reshape({-1})}).cpu();
            if (group_.rank() == r) {
                group_.send(moments, 0);
            } else {
                group_.recv(moments, r);
                const int64_t n = mine[k].numel();
                s.exp_avg().copy_(moments.narrow(0, 0, n).view_as(mine[k]));
                s.exp_avg_sq().copy_(moments.narrow(0, n, n).view_as(mine[k]));
                s.step(int64_t(step));
            }
        }
    }
}

void OptimizerShards::release(torch::optim::Optimizer &optimizer) {
    for (size_t i = 0; i < params_.size(); ++i)
        if (owner_[i] != group_.rank()) erase_param_state(optimizer, params_[i]);
}

} // namespace cdrmix
