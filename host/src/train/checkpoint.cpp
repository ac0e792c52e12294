#include "train/checkpoint.hpp"

#include "core/files.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/atomic_file.hpp>
#include "train/safetensors.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

// Flushes a file or folder to disk (a folder's fsync makes its entries durable).
void fsync_path(const fs::path &p) {
    const int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) throw Error(p.string() + ": cannot open to sync");
    ::fsync(fd);
    ::close(fd);
}

std::string step_name(int64_t step) {
    char name[32];
    std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
    return name;
}

void write_checkpoint_files(const fs::path &dir, Model &model, torch::optim::Optimizer &optimizer,
                            const Tokenizer &tokenizer, const Json &trainer_state, const Json &run_config) {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto &p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
    for (const auto &b : model.named_buffers()) tensors.emplace_back(b.key(), b.value());
    save_safetensors((dir / "model.safetensors").string(), tensors, {{"format", "pt"}});
    write_json_atomic((dir / "model.json").string(), model.spec().source_json);
    write_json_atomic((dir / "tokenizer.json").string(), tokenizer.to_json());
    write_json_atomic((dir / "trainer_state.json").string(), trainer_state);
    if (!run_config.is_null()) write_json_atomic((dir / checkpoint_layout::run_config).string(), run_config);
    torch::save(optimizer, (dir / "optimizer.pt").string());
    for (const auto &e : fs::directory_iterator(dir)) fsync_path(e.path());
    fsync_path(dir);
}

} // namespace

std::string save_checkpoint(const std::string &root, int64_t step, Model &model, torch::optim::Optimizer &optimizer,
                            const Tokenizer &tokenizer, const Json &trainer_state, const Json &run_config) {
    const std::string name = step_name(step);
    const fs::path final_dir = fs::path(root) / name;
    const fs::path tmp_dir = fs::path(root) / (".tmp-" + name);
    const fs::path old_dir = fs::path(root) / (".old-" + name);
    fs::create_directories(root);
    remove_tree(tmp_dir);
    fs::create_directories(tmp_dir);
    try {
        write_checkpoint_files(tmp_dir, model, optimizer, tokenizer, trainer_state, run_config);
    } catch (...) {
        std::error_code ec;
        remove_tree(tmp_dir, ec);
        throw;
    }
    // The same step saved again (a stop right after a periodic save): the old
    // folder steps aside first, so there is always a complete one under a name.
    remove_tree(old_dir);
    if (fs::exists(final_dir)) fs::rename(final_dir, old_dir);
    fs::rename(tmp_dir, final_dir);
    remove_tree(old_dir);
    const fs::path link = fs::path(root) / "latest", link_tmp = fs::path(root) / ".latest.tmp";
    fs::remove(link_tmp);
    fs::create_directory_symlink(name, link_tmp);
    fs::rename(link_tmp, link);
    fsync_path(root);
    return final_dir.string();
}

void prune_checkpoints(const std::string &root, int64_t keep) {
    if (keep <= 0) return;
    std::error_code ec;
    const fs::path latest = fs::read_symlink(fs::path(root) / "latest", ec);
    std::vector<std::string> names;
    for (const auto &e : fs::directory_iterator(root)) {
        const std::string n = e.path().filename().string();
        if (e.is_directory() && n.rfind("step-", 0) == 0) names.push_back(n);
    }
    std::sort(names.begin(), names.end()); // zero-padded step numbers sort in step order
    int64_t excess = static_cast<int64_t>(names.size()) - keep;
    for (size_t i = 0; i < names.size() && excess > 0; ++i) {
        if (!ec && names[i] == latest.filename().string()) continue;
        remove_tree(fs::path(root) / names[i]);
        --excess;
    }
}

std::string resolve_checkpoint(const std::string &spec) {
    const fs::path p(spec);
    if (!fs::exists(p)) throw Error("checkpoint '" + spec + "' does not exist");
    for (const fs::path &candidate : {p, p / "latest", p / "checkpoints" / "latest"})
        if (fs::is_regular_file(candidate / "model.safetensors")) return fs::canonical(candidate).string();
    throw Error("'" + spec + "' is not a checkpoint: no model.safetensors in it, in " + spec + "/latest or in " + spec +
                "/checkpoints/latest");
}

std::string find_latest_checkpoint(const std::string &runs_root, const std::string &name) {
    const std::string subdir = run_layout::checkpoints;
    std::error_code ec;
    if (!fs::is_directory(runs_root, ec)) return "";
    std::string best;
    fs::file_time_type best_time{};
    for (const auto &e : fs::directory_iterator(runs_root, ec)) {
        const std::string n = e.path().filename().string();
        if (!e.is_directory() || (!name.empty() && !run_folder::is_run_of(n, name))) continue;
        const fs::path state = e.path() / subdir / "latest" / "trainer_state.json";
        if (!fs::is_regular_file(state, ec)) continue;
        const auto t = fs::last_write_time(state, ec);
        if (best.empty() || t > best_time) {
            best = fs::canonical(e.path() / subdir / "latest").string();
            best_time = t;
        }
    }
    return best;
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

void load_optimizer_state(torch::optim::Optimizer &optimizer, const std::string &checkpoint_dir) {
    const std::string file = (fs::path(checkpoint_dir) / "optimizer.pt").string();
    if (!fs::is_regular_file(file)) throw Error(file + ": missing (the checkpoint cannot resume training)");
    try {
        torch::load(optimizer, file);
    } catch (const c10::Error &e) {
        throw Error(file + ": cannot load the optimiser state: " + e.msg().substr(0, e.msg().find('\n')));
    }
}

Json read_checkpoint_json(const std::string &checkpoint_dir, const std::string &file) {
    const std::string path = (fs::path(checkpoint_dir) / file).string();
    std::ifstream in(path);
    if (!in) throw Error(path + ": missing");
    try {
        return Json::parse(in);
    } catch (const Json::parse_error &e) {
        throw Error(path + ": malformed JSON: " + e.what());
    }
}

std::string cpu_rng_state() {
    torch::Tensor s = at::detail::getDefaultCPUGenerator().get_state();
    static const char *digits = "0123456789abcdef";
    std::string hex;
    hex.reserve(static_cast<size_t>(s.numel()) * 2);
    const uint8_t *p = s.data_ptr<uint8_t>();
    for (int64_t i = 0; i < s.numel(); ++i) {
        hex.push_back(digits[p[i] >> 4]);
        hex.push_back(digits[p[i] & 15]);
    }
    return hex;
}

void set_cpu_rng_state(const std::string &hex, const std::string &where) {
    auto nibble = [&](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        throw Error(where + ": 'rng_state' is not hex text");
    };
    if (hex.size() % 2) throw Error(where + ": 'rng_state' has an odd length");
    torch::Tensor s = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
    uint8_t *p = s.data_ptr<uint8_t>();
    for (size_t i = 0; i < hex.size() / 2; ++i) p[i] = static_cast<uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(s);
}

LoadedCheckpoint load_checkpoint(const std::string &checkpoint_dir, const Registry &registry) {
    LoadedCheckpoint c;
    c.dir = checkpoint_dir;
    const std::string spec_file = (fs::path(checkpoint_dir) / "model.json").string();
    c.model = std::make_shared<Model>(ModelSpec::from_json(read_checkpoint_json(checkpoint_dir, "model.json"), spec_file),
                                      registry);
    load_model_weights(*c.model, checkpoint_dir);
    c.tokenizer = tokenizer_from_json(read_checkpoint_json(checkpoint_dir, "tokenizer.json"));
    auto optional_json = [&](const char *file) {
        return fs::is_regular_file(fs::path(checkpoint_dir) / file) ? read_checkpoint_json(checkpoint_dir, file)
                                                                    : Json::object();
    };
    c.trainer_state = optional_json("trainer_state.json");
    const bool legacy = !fs::is_regular_file(fs::path(checkpoint_dir) / checkpoint_layout::run_config);
    const char *run_config = legacy ? checkpoint_layout::legacy_run_config : checkpoint_layout::run_config;
    c.run_config = optional_json(run_config);
    c.run_config_file = (fs::path(checkpoint_dir) / run_config).string();
    return c;
}

} // namespace cdrmix
