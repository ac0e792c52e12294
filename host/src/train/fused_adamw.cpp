#include "train/fused_adamw.hpp"
#include "train/adamw_kernels.hpp"

#include <cdrmix/error.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>

namespace cdrmix {

namespace {

using torch::Tensor;

// Elements per parallel task: small enough to split a 1M-parameter model over
// a few threads, large enough that the split costs nothing.
constexpr int64_t kGrain = 1 << 15;

// The key of a parameter's state, as torch::optim::AdamW makes it, so the two
// share state: LibTorch 1.x keys by the TensorImpl's address as text, 2.x by
// the address itself.
template <typename Key> Key state_key(c10::TensorImpl *impl) {
    if constexpr (std::is_same_v<Key, std::string>) {
        std::ostringstream text;
        text << impl;
        return text.str();
    } else {
        return impl;
    }
}

// Can the fused loops read these tensors as flat arrays of one float type?
bool flat_cpu_tensors(const std::vector<Tensor> &tensors) {
    if (tensors.empty()) return false;
    const auto dtype = tensors.front().scalar_type();
    if (dtype != torch::kFloat32 && dtype != torch::kFloat64) return false;
    return std::all_of(tensors.begin(), tensors.end(), [&](const Tensor &t) {
        return t.device().is_cpu() && t.scalar_type() == dtype && t.is_contiguous() && !t.is_sparse();
    });
}

// Runs f(chunk, i, begin, end) over element ranges [begin, end) of items i
// (sizes[i] elements each), with the elements of all items cut into chunks of
// kGrain as if they were one array: one parallel region however many tensors
// there are, and the same chunks whatever the thread count.
template <typename F>
void for_each_chunk(const std::vector<int64_t> &sizes, const F &f) {
    std::vector<int64_t> starts(sizes.size() + 1, 0);
    for (size_t i = 0; i < sizes.size(); ++i) starts[i + 1] = starts[i] + sizes[i];
    const int64_t chunks = (starts.back() + kGrain - 1) / kGrain;
    at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
        for (int64_t c = first; c < last; ++c) {
            const int64_t begin = c * kGrain, end = std::min(begin + kGrain, starts.back());
            auto i = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin() - 1);
            for (; i < sizes.size() && starts[i] < end; ++i)
                f(c, i, std::max(begin, starts[i]) - starts[i], std::min(end, starts[i + 1]) - starts[i]);
        }
    });
}

std::vector<Tensor> defined_grads(const std::vector<Tensor> &params) {
    std::vector<Tensor> grads;
    for (const auto &p : params)
        if (p.grad().defined()) grads.push_back(p.grad());
    return grads;
}

template <typename T>
double sum_of_squares(const std::vector<Tensor> &grads) {
    std::vector<int64_t> sizes;
    for (const auto &g : grads) sizes.push_back(g.numel());
    // One partial sum per chunk, added in chunk order: the same result on every run.
    const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
    std::vector<double> partial(static_cast<size_t>((total + kGrain - 1) / kGrain), 0.0);
    for_each_chunk(sizes, [&](int64_t chunk, size_t i, int64_t begin, int64_t end) {
        partial[static_cast<size_t>(chunk)] += kernels::sum_of_squares(grads[i].data_ptr<T>(), begin, end);
    });
    return std::accumulate(partial.begin(), partial.end(), 0.0);
}

} // namespace

FusedAdamW::FusedAdamW(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                       torch::optim::AdamWOptions defaults)
    : torch::optim::AdamW(std::move(param_groups), defaults) {
    for (const auto &g : param_groups_)
        if (static_cast<const torch::optim::AdamWOptions &>(g.options()).amsgrad())
            throw Error("optimizer: the fused AdamW has no amsgrad");
}

Tensor FusedAdamW::step(LossClosure closure) {
    std::vector<Tensor> params, grads;
    for (const auto &g : param_groups_)
        for (const auto &p : g.params())
            if (p.grad().defined()) {
                params.push_back(p);
                grads.push_back(p.grad());
            }
    std::vector<Tensor> all = params;
    all.insert(all.end(), grads.begin(), grads.end());
    if (closure != nullptr || !flat_cpu_tensors(all)) return torch::optim::AdamW::step(closure);

    torch::NoGradGuard no_grad;
    auto run = [&](auto zero) {
        using T = decltype(zero);
        std::vector<kernels::AdamWTask<T>> tasks;
        std::vector<int64_t> sizes;
        for (auto &group : param_groups_) {
            const auto &o = static_cast<const torch::optim::AdamWOptions &>(group.options());
            const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
            for (auto &p : group.params()) {
                if (!p.grad().defined()) continue;
                auto &s = adamw_state(*this, p);
                s.step(s.step() + 1);
                const double bias_correction1 = 1 - std::pow(beta1, double(s.step()));
                const double bias_correction2 = 1 - std::pow(beta2, double(s.step()));
                tasks.push_back({p.data_ptr<T>(), s.exp_avg().data_ptr<T>(), s.exp_avg_sq().data_ptr<T>(),
                                 p.grad().data_ptr<T>(), T(1 - o.lr() * o.weight_decay()), T(beta1), T(1 - beta1), T(beta2), T(1 - beta2),
                                 T(o.lr() / bias_correction1), T(std::sqrt(bias_correction2)), T(o.eps())});
                sizes.push_back(p.numel());
            }
        }
        for_each_chunk(sizes, [&](int64_t, size_t i, int64_t begin, int64_t end) { kernels::adamw(tasks[i], begin, end); });
    };
    if (params.front().scalar_type() == torch::kFloat64)
        run(double(0));
    else
        run(float(0));
    return {};
}

namespace {

double gradient_norm(const std::vector<Tensor> &grads) {
    if (grads.empty()) return 0.0;
    if (!flat_cpu_tensors(grads)) {
        std::vector<Tensor> norms;
        for (const auto &g : grads) norms.push_back(g.norm());
        return torch::stack(norms).norm().item<double>();
    }
    const double sum = grads.front().scalar_type() == torch::kFloat64 ? sum_of_squares<double>(grads)
                                                                       : sum_of_squares<float>(grads);
    return std::sqrt(sum);
}

void scale_gradients(const std::vector<Tensor> &grads, double factor) {
    if (!flat_cpu_tensors(grads)) {
        for (const auto &g : grads) g.mul_(factor);
        return;
    }
    std::vector<int64_t> sizes;
    for (const auto &g : grads) sizes.push_back(g.numel());
    auto run = [&](auto zero) {
        using T = decltype(zero);
        const T f = T(factor);
        for_each_chunk(sizes, [&](int64_t, size_t i, int64_t begin, int64_t end) {
            kernels::scale(grads[i].data_ptr<T>(), f, begin, end);
        });
    };
    if (grads.front().scalar_type() == torch::kFloat64)
        run(double(0));
    else
        run(float(0));
}

} // namespace

double clip_grad_norm(const std::vector<Tensor> &params, double max_norm) {
    const std::vector<Tensor> grads = defined_grads(params);
    const double norm = gradient_norm(grads);
    const double factor = max_norm / (norm + 1e-6);
    if (max_norm > 0 && factor < 1) scale_gradients(grads, factor); // at 1 or more torch's factor changes nothing
    return norm;
}

double clip_grad_norm(const std::vector<Tensor> &whole, const std::vector<Tensor> &share,
                      const std::function<double(double)> &sum_over_group, double max_norm) {
    const std::vector<Tensor> a = defined_grads(whole), b = defined_grads(share);
    const double na = gradient_norm(a), nb = gradient_norm(b);
    const double norm = std::sqrt(na * na + sum_over_group(nb * nb));
    const double factor = max_norm / (norm + 1e-6);
    if (max_norm > 0 && factor < 1) {
        scale_gradients(a, factor);
        scale_gradients(b, factor);
    }
    return norm;
}

torch::optim::OptimizerParamState *param_state(torch::optim::Optimizer &optimizer, const torch::Tensor &p) {
    auto &state = optimizer.state();
    auto found = state.find(state_key<std::decay_t<decltype(state)>::key_type>(p.unsafeGetTensorImpl()));
    return found == state.end() ? nullptr : found->second.get();
}

torch::optim::AdamWParamState &adamw_state(torch::optim::Optimizer &optimizer, const torch::Tensor &p) {
    auto &state = optimizer.state();
    const auto key = state_key<std::decay_t<decltype(state)>::key_type>(p.unsafeGetTensorImpl());
    auto found = state.find(key);
    if (found == state.end()) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = state.emplace(key, std::move(fresh)).first;
    }
    return static_cast<torch::optim::AdamWParamState &>(*found->second);
}

void erase_param_state(torch::optim::Optimizer &optimizer, const torch::Tensor &p) {
    auto &state = optimizer.state();
    state.erase(state_key<std::decay_t<decltype(state)>::key_type>(p.unsafeGetTensorImpl()));
}

} // namespace cdrmix
