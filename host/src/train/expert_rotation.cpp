#include "train/expert_rotation.hpp"

#include "core/files.hpp"
#include "train/fused_adamw.hpp"
#include "train/safetensors.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <regex>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

using ExpertParams = std::vector<std::pair<std::string, torch::Tensor>>;

bool has_state(torch::optim::Optimizer &optimizer, const ExpertParams &params) {
    for (const auto &np : params)
        if (param_state(optimizer, np.second)) return true;
    return false;
}

// Reads an expert's moments and step counts from `file` into the optimiser.
// A parameter the file has nothing for had no state when it was written.
void load_moments(const std::string &file, const ExpertParams &params, torch::optim::Optimizer &optimizer) {
    const auto tensors = load_safetensors(file);
    for (const auto &[name, p] : params) {
        const auto avg = tensors.find(name + ".exp_avg"), sq = tensors.find(name + ".exp_avg_sq"),
                   step = tensors.find(name + ".step");
        if (avg == tensors.end() && sq == tensors.end() && step == tensors.end()) continue;
        if (avg == tensors.end() || sq == tensors.end() || step == tensors.end())
            throw Error(file + ": the moments of '" + name + "' are incomplete (exp_avg, exp_avg_sq and step)");
        for (const auto *t : {&avg->second, &sq->second})
            if (t->sizes() != p.sizes() || t->scalar_type() != p.scalar_type())
                throw Error(file + ": the moments of '" + name + "' have shape " + c10::str(t->sizes()) + " " +
                            std::string(c10::toString(t->scalar_type())) + ", the parameter " + c10::str(p.sizes()) +
                            " " + c10::toString(p.scalar_type()) + ": the file belongs to another model");
        auto &s = adamw_state(optimizer, p);
        s.exp_avg(avg->second.to(p.device()));
        s.exp_avg_sq(sq->second.to(p.device()));
        s.step(step->second.item<int64_t>());
    }
}

// A hard link where the file system allows one: the source is replaced by
// rename when rewritten, so the link keeps the bytes it was made from.
void link_or_copy(const fs::path &from, const fs::path &to) {
    std::error_code ec;
    fs::create_hard_link(from, to, ec);
    if (!ec) return;
    if (!fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec) || ec)
        throw Error(to.string() + ": cannot write: " + ec.message());
}

} // namespace

std::vector<MoeLayerExperts> find_routed_experts(Model &model) {
    static const std::regex routed(R"(blocks\.(\d+)\.ffn\.experts\.(\d+)\..+)");
    std::map<int64_t, std::map<int64_t, ExpertParams>> found;
    for (const auto &p : model.named_parameters()) {
        std::smatch m;
        if (std::regex_match(p.key(), m, routed))
            found[std::stoll(m[1].str())][std::stoll(m[2].str())].emplace_back(p.key(), p.value());
    }
    std::vector<MoeLayerExperts> layers;
    for (auto &[layer, experts] : found) {
        MoeLayerExperts l;
        l.layer = layer;
        for (auto &[index, params] : experts) {
            if (index != int64_t(l.experts.size()))
                throw Error("layer " + std::to_string(layer) + " has no routed expert " +
                            std::to_string(l.experts.size()) + " but an expert " + std::to_string(index));
            l.experts.push_back(std::move(params));
        }
        layers.push_back(std::move(l));
    }
    return layers;
}

std::string expert_moments_file(int64_t layer, int64_t expert) {
    return "expert_moments-L" + std::to_string(layer) + "-E" + std::to_string(expert) + ".safetensors";
}

void load_all_expert_moments(Model &model, torch::optim::Optimizer &optimizer, const std::string &checkpoint_dir) {
    for (const auto &l : find_routed_experts(model))
        for (size_t e = 0; e < l.experts.size(); ++e) {
            const fs::path file = fs::path(checkpoint_dir) / expert_moments_file(l.layer, int64_t(e));
            if (fs::is_regular_file(file)) load_moments(file.string(), l.experts[e], optimizer);
        }
}

ExpertRotation::ExpertRotation(Model &model, int64_t switch_every)
    : layers_(find_routed_experts(model)), switch_every_(switch_every) {
    if (layers_.empty())
        throw Error("train.expert_at_a_time: the model has no MoE layer (no parameters named blocks.L.ffn.experts.E.*)");
    if (switch_every_ < 1) throw Error("train.expert_switch_every: must be at least 1, not " + std::to_string(switch_every));
    active_.assign(layers_.size(), 0);
    for (size_t i = 0; i < layers_.size(); ++i)
        for (size_t e = 0; e < layers_[i].experts.size(); ++e) set_trainable(i, int64_t(e), e == 0);
}

ExpertRotation::~ExpertRotation() {
    std::error_code ec;
    if (!spill_dir_.empty()) remove_tree(spill_dir_, ec);
    for (size_t i = 0; i < layers_.size(); ++i)
        for (size_t e = 0; e < layers_[i].experts.size(); ++e) set_trainable(i, int64_t(e), true);
}

int64_t ExpertRotation::active_at(size_t i, int64_t step) const {
    return (step / switch_every_) % int64_t(layers_[i].experts.size());
}

void ExpertRotation::ensure_spill_dir(const std::string &spill_root) {
    if (!spill_dir_.empty()) return;
    const fs::path root = spill_root.empty() ? fs::temp_directory_path() : fs::path(spill_root);
    fs::create_directories(root);
    std::string pattern = (root / ".expert-moments-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw Error(pattern + ": cannot make the folder of the frozen experts' moments");
    spill_dir_ = pattern;
}

void ExpertRotation::set_trainable(size_t i, int64_t expert, bool on) {
    for (auto &np : layers_[i].experts[size_t(expert)]) {
        np.second.requires_grad_(on);
        if (!on) np.second.mutable_grad() = torch::Tensor();
    }
}

void ExpertRotation::spill(size_t i, int64_t expert, torch::optim::Optimizer &optimizer) {
    const ExpertParams &params = layers_[i].experts[size_t(expert)];
    NamedTensors moments;
    for (const auto &[name, p] : params)
        if (auto *s = param_state(optimizer, p)) {
            const auto &a = static_cast<torch::optim::AdamWParamState &>(*s);
            moments.emplace_back(name + ".exp_avg", a.exp_avg());
            moments.emplace_back(name + ".exp_avg_sq", a.exp_avg_sq());
            moments.emplace_back(name + ".step", torch::tensor({int64_t(a.step())}, torch::kInt64));
        }
    const fs::path file = fs::path(spill_dir_) / expert_moments_file(layers_[i].layer, expert);
    if (moments.empty()) {
        std::error_code ec;
        fs::remove(file, ec); // an expert that never received a gradient: it comes back fresh
    } else {
        save_safetensors(file.string(), moments);
    }
    for (const auto &np : params) erase_param_state(optimizer, np.second);
}

void ExpertRotation::advance(int64_t step, torch::optim::Optimizer &optimizer, const std::string &spill_root) {
    for (size_t i = 0; i < layers_.size(); ++i) {
        const int64_t next = active_at(i, step);
        if (next == active_[i]) continue;
        ensure_spill_dir(spill_root);
        spill(i, active_[i], optimizer);
        set_trainable(i, active_[i], false);
        set_trainable(i, next, true);
        const fs::path file = fs::path(spill_dir_) / expert_moments_file(layers_[i].layer, next);
        if (fs::is_regular_file(file)) load_moments(file.string(), layers_[i].experts[size_t(next)], optimizer);
        active_[i] = next;
    }
}

void ExpertRotation::write_spilled(const std::string &dir) const {
    if (spill_dir_.empty()) return;
    for (size_t i = 0; i < layers_.size(); ++i)
        for (size_t e = 0; e < layers_[i].experts.size(); ++e) {
            if (int64_t(e) == active_[i]) continue; // its state is in optimizer.pt
            const std::string name = expert_moments_file(layers_[i].layer, int64_t(e));
            if (fs::is_regular_file(fs::path(spill_dir_) / name))
                link_or_copy(fs::path(spill_dir_) / name, fs::path(dir) / name);
        }
}

void ExpertRotation::restore(const std::string &checkpoint_dir, int64_t step, torch::optim::Optimizer &optimizer,
                             const std::string &spill_root) {
    // Beside the checkpoint when the trainer has no folder yet: the same file
    // system, so its files are linked, not copied.
    fs::path checkpoint = fs::absolute(checkpoint_dir).lexically_normal();
    if (!checkpoint.has_filename()) checkpoint = checkpoint.parent_path(); // "dir/" names dir
    const std::string root = spill_root.empty() ? checkpoint.parent_path().string() : spill_root;
    // The scratch files belong to the state being replaced.
    if (!spill_dir_.empty())
        for (const auto &f : fs::directory_iterator(spill_dir_)) remove_tree(f.path());
    for (size_t i = 0; i < layers_.size(); ++i) {
        active_[i] = active_at(i, step);
        for (size_t e = 0; e < layers_[i].experts.size(); ++e) {
            const bool active = int64_t(e) == active_[i];
            set_trainable(i, int64_t(e), active);
            const std::string name = expert_moments_file(layers_[i].layer, int64_t(e));
            const fs::path saved = fs::path(checkpoint_dir) / name;
            if (active) {
                if (fs::is_regular_file(saved)) load_moments(saved.string(), layers_[i].experts[e], optimizer);
            } else if (has_state(optimizer, layers_[i].experts[e])) {
                ensure_spill_dir(root);
                spill(i, int64_t(e), optimizer);
            } else if (fs::is_regular_file(saved)) {
                ensure_spill_dir(root);
                link_or_copy(saved, fs::path(spill_dir_) / name);
            }
        }
    }
}

} // namespace cdrmix
