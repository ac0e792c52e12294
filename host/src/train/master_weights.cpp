#include "train/master_weights.hpp"

#include "train/checkpoint.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

// A float32 leaf the optimiser can step (make_adamw takes only tensors that require gradients).
torch::Tensor master_of(const torch::Tensor &weight) {
    return weight.detach().to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true).set_requires_grad(true);
}

} // namespace

MasterWeights::MasterWeights(Model &model) {
    torch::NoGradGuard no_grad;
    // Checked before any is converted, so a refused model is left as it was.
    for (const auto &p : model.named_parameters())
        if (p.value().is_floating_point() && p.value().scalar_type() != torch::kFloat32)
            throw Error("train.weights_dtype = \"bfloat16\": parameter '" + p.key() + "' is " +
                        std::string(c10::toString(p.value().scalar_type())) +
                        ", not float32 (build the model in float32)");
    for (auto &p : model.named_parameters()) {
        torch::Tensor &w = p.value();
        if (!w.is_floating_point()) continue;
        if (w.requires_grad()) masters_.emplace_back(p.key(), master_of(w));
        w.set_data(w.to(torch::kBFloat16));
        if (w.requires_grad()) weights_.emplace_back(p.key(), w);
    }
}

std::vector<torch::Tensor> MasterWeights::tensors() const {
    std::vector<torch::Tensor> out;
    out.reserve(masters_.size());
    for (const auto &m : masters_) out.push_back(m.second);
    return out;
}

void MasterWeights::widen_gradients() {
    for (size_t i = 0; i < masters_.size(); ++i) {
        torch::Tensor &w = weights_[i].second;
        torch::Tensor &m = masters_[i].second;
        if (!w.grad().defined()) continue;
        if (m.grad().defined())
            m.mutable_grad().add_(w.grad());
        else
            m.mutable_grad() = w.grad().to(torch::kFloat32);
        w.mutable_grad() = torch::Tensor(); // one parameter at a time: the bf16 and float32 copies barely overlap
    }
}

void MasterWeights::round_into_weights() {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < masters_.size(); ++i) {
        weights_[i].second.copy_(masters_[i].second);
        masters_[i].second.mutable_grad() = torch::Tensor();
    }
}

void MasterWeights::rebind(Model &model, const std::vector<std::string> &replaced) {
    std::map<std::string, torch::Tensor> kept(masters_.begin(), masters_.end());
    masters_.clear();
    weights_.clear();
    for (const auto &p : model.named_parameters()) {
        if (!p.value().requires_grad() || !p.value().is_floating_point()) continue;
        const bool fresh = std::any_of(replaced.begin(), replaced.end(),
                                       [&](const std::string &prefix) { return p.key().rfind(prefix, 0) == 0; });
        const auto it = fresh ? kept.end() : kept.find(p.key());
        masters_.emplace_back(p.key(), it != kept.end() ? it->second : master_of(p.value()));
        weights_.emplace_back(p.key(), p.value());
    }
}

void MasterWeights::load(const std::string &checkpoint_dir) {
    load_float32_weights(masters_, checkpoint_dir);
    round_into_weights();
}

bool has_master_weights(const std::string &checkpoint_dir) {
    return fs::is_regular_file(fs::path(checkpoint_dir) / checkpoint_layout::masters);
}

void load_float32_weights(const NamedTensors &targets, const std::string &checkpoint_dir) {
    const std::string file =
        (fs::path(checkpoint_dir) / (has_master_weights(checkpoint_dir) ? checkpoint_layout::masters : "model.safetensors"))
            .string();
    const auto tensors = load_safetensors(file);
    torch::NoGradGuard no_grad;
    for (const auto &[name, dst] : targets) {
        const auto it = tensors.find(name);
        if (it == tensors.end()) throw Error(file + ": missing tensor '" + name + "'");
        if (it->second.sizes() != dst.sizes())
            throw Error(file + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", model expects " +
                        c10::str(dst.sizes()));
        auto target = dst; // a handle: copy_ writes the caller's tensor
        target.copy_(it->second);
    }
}

} // namespace cdrmix
