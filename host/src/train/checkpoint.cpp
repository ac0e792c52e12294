#include "train/checkpoint.hpp"

#include "metrics/run_dir.hpp"
#include "train/safetensors.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace cdrmix {

std::string save_checkpoint(const std::string &root, int64_t step, Model &model, torch::optim::Optimizer &optimizer,
                            const Tokenizer &tokenizer, const Json &trainer_state) {
    char name[32];
    std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
    const fs::path final_dir = fs::path(root) / name;
    const fs::path tmp_dir = fs::path(root) / (std::string(".tmp-") + name);
    fs::remove_all(tmp_dir);
    fs::create_directories(tmp_dir);

    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto &p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
    for (const auto &b : model.named_buffers()) tensors.emplace_back(b.key(), b.value());
    save_safetensors((tmp_dir / "model.safetensors").string(), tensors, {{"format", "pt"}});
    write_json_atomic((tmp_dir / "model.json").string(), model.spec().source_json);
    write_json_atomic((tmp_dir / "tokenizer.json").string(), tokenizer.to_json());
    write_json_atomic((tmp_dir / "trainer_state.json").string(), trainer_state);
    torch::save(optimizer, (tmp_dir / "optimizer.pt").string());

    if (fs::exists(final_dir)) fs::remove_all(final_dir); // same step saved again: replace it
    fs::rename(tmp_dir, final_dir);
    const fs::path link = fs::path(root) / "latest", link_tmp = fs::path(root) / ".latest.tmp";
    fs::remove(link_tmp);
    fs::create_directory_symlink(name, link_tmp);
    fs::rename(link_tmp, link);
    return final_dir.string();
}

void load_model_weights(Model &model, const std::string &checkpoint_dir) {
    const std::string file = (fs::path(checkpoint_dir) / "model.safetensors").string();
    auto tensors = load_safetensors(file);
    torch::NoGradGuard no_grad;
    auto assign = [&](const std::string &name, torch::Tensor &dst) {
        auto it = tensors.find(name);
        if (it == tensors.end()) throw Error(file + ": missing tensor '" + name + "'");
        if (it->second.sizes() != dst.sizes())
            throw Error(file + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", model expects " +
                        c10::str(dst.sizes()));
        dst.copy_(it->second);
    };
    for (auto &p : model.named_parameters()) assign(p.key(), p.value());
    for (auto &b : model.named_buffers()) assign(b.key(), b.value());
}

} // namespace cdrmix
