#include "train/expert_state.hpp"

#include "train/fused_adamw.hpp"
#include "train/trainer.hpp"

#include <torch/torch.h>

namespace cdrmix {

namespace {

// An AdamW over `named` with `like`'s hyperparameters (its first group decays, its second does not).
std::unique_ptr<torch::optim::AdamW> adamw_like(const NamedTensors &named, torch::optim::AdamW &like) {
    const auto &o = static_cast<const torch::optim::AdamWOptions &>(like.param_groups().at(0).options());
    return make_adamw(named, o.lr(), o.weight_decay(), std::get<0>(o.betas()), std::get<1>(o.betas()), o.eps());
}

void share_state(torch::optim::AdamW &to, const torch::Tensor &p, const torch::optim::AdamWParamState &from) {
    auto &s = adamw_state(to, p);
    s.exp_avg(from.exp_avg());
    s.exp_avg_sq(from.exp_avg_sq());
    s.step(from.step());
}

} // namespace

WholeModel gather_whole_model(ExpertParallel &experts, const torch::nn::Module &model, torch::optim::AdamW &optimizer) {
    torch::NoGradGuard no_grad;
    const auto &layout = experts.layout(model);
    WholeModel whole;
    if (experts.world().rank() >= experts.size()) return whole; // rank 0's expert group holds every expert
    ProcessGroup &group = experts.experts();
    const int me = group.rank();
    std::vector<torch::Tensor> values(layout.size());
    std::vector<torch::Tensor> moments(layout.size());
    std::vector<int64_t> steps(layout.size(), -1);
    for (size_t i = 0; i < layout.size(); ++i) values[i] = layout[i].local;
    for (int m = 1; m < group.world_size(); ++m) {
        if (me != m && me != 0) continue;
        std::vector<size_t> held;
        for (size_t i = 0; i < layout.size(); ++i)
            if (layout[i].member == m) held.push_back(i);
        // Per tensor: its AdamW step (-1: no state), whether it takes gradients.
        torch::Tensor info = torch::full({int64_t(held.size()), 2}, -1.0, torch::kFloat64);
        if (me == m) {
            for (size_t k = 0; k < held.size(); ++k) {
                const ExpertParallel::Entry &e = layout[held[k]];
                info[int64_t(k)][1] = e.local.requires_grad() ? 1.0 : 0.0;
                if (!e.parameter) continue;
                if (auto *s = param_state(optimizer, e.local))
                    info[int64_t(k)][0] = double(static_cast<torch::optim::AdamWParamState *>(s)->step());
            }
            group.send(info, 0);
        } else {
            group.recv(info, m);
        }
        for (size_t k = 0; k < held.size(); ++k) {
            const ExpertParallel::Entry &e = layout[held[k]];
            const int64_t step = int64_t(info[int64_t(k)][0].item<double>());
            torch::Tensor value, both;
            if (me == m) {
                value = e.local.detach().cpu().contiguous();
                group.send(value, 0);
                if (step >= 0) {
                    auto &s = adamw_state(optimizer, e.local);
                    both = torch::cat({s.exp_avg().reshape({-1}), s.exp_avg_sq().reshape({-1})}).cpu();
                    group.send(both, 0);
                }
                continue;
            }
            value = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
            group.recv(value, m);
            if (info[int64_t(k)][1].item<double>() > 0) value.requires_grad_(true);
            values[held[k]] = value;
            if (step >= 0) {
                both = torch::empty({2 * value.numel()}, value.options().requires_grad(false));
                group.recv(both, m);
                moments[held[k]] = both;
                steps[held[k]] = step;
            }
        }
    }
    if (me != 0) return whole;
    NamedTensors params;
    for (size_t i = 0; i < layout.size(); ++i) {
        whole.weights.emplace_back(layout[i].name, values[i]);
        if (layout[i].parameter) params.emplace_back(layout[i].name, values[i]);
    }
    whole.optimizer = adamw_like(params, optimizer);
    for (size_t i = 0; i < layout.size(); ++i) {
        if (!layout[i].parameter) continue;
        if (layout[i].local.defined()) {
            if (auto *s = param_state(optimizer, layout[i].local))
                share_state(*whole.optimizer, values[i], static_cast<torch::optim::AdamWParamState &>(*s));
        } else if (steps[i] >= 0) {
            const int64_t n = values[i].numel();
            auto &s = adamw_state(*whole.optimizer, values[i]);
            s.exp_avg().copy_(moments[i].narrow(0, 0, n).view_as(values[i]));
            s.exp_avg_sq().copy_(moments[i].narrow(0, n, n).view_as(values[i]));
            s.step(steps[i]);
        }
    }
    return whole;
}

void load_whole_optimizer_state(ExpertParallel &experts, const torch::nn::Module &model,
                                torch::optim::AdamW &optimizer, const std::string &checkpoint_dir) {
    const auto &layout = experts.layout(model);
    NamedTensors params;
    for (const auto &e : layout) {
        if (!e.parameter) continue;
        // Another member's tensors take part only as slots for the state read back.
        params.emplace_back(e.name, e.local.defined() ? e.local
                                                      : torch::zeros(e.shape, torch::TensorOptions().dtype(e.dtype))
                                                            .requires_grad_(true));
    }
    auto whole = adamw_like(params, optimizer);
    load_optimizer_state(*whole, checkpoint_dir);
    for (const auto &e : layout)
        if (e.parameter && e.local.defined())
            if (auto *s = param_state(*whole, e.local))
                share_state(optimizer, e.local, static_cast<torch::optim::AdamWParamState &>(*s));
}

} // namespace cdrmix
