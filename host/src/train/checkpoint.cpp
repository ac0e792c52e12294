#include "train/checkpoint.hpp"

#include "core/files.hpp"
#include "core/zip_bounds.hpp"
#include "train/checkpoint_extra_files.hpp"
#include "train/checkpoint_files.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/atomic_file.hpp>
#include "train/fused_adamw.hpp"
#include "train/safetensors.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

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

// Every file's size and CRC-32C, read back from what was written, in a manifest written last.
void write_manifest(const fs::path &dir) {
    Json files = Json::object();
    for (const auto &e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        const auto [crc, bytes] = file_crc32c(e.path());
        char hex[9];
        std::snprintf(hex, sizeof hex, "%08x", crc);
        files[e.path().filename().string()] = {{"bytes", bytes}, {"crc32c", hex}};
    }
    write_json_atomic((dir / kManifest).string(), {{"format", "cdrmix checkpoint manifest 1"}, {"files", files}});
}

// A step-* folder a resume can use: written whole (it has a manifest, or the
// files an older cdrmix wrote before manifests).
bool complete_checkpoint(const fs::path &dir) {
    std::error_code ec;
    if (fs::is_regular_file(dir / kManifest, ec)) return true;
    return fs::is_regular_file(dir / "model.safetensors", ec) && fs::is_regular_file(dir / "trainer_state.json", ec);
}

// checkpoints/latest, or when that link dangles (a crash between writing a
// folder and moving the link, or a deleted folder) the newest complete step-*.
fs::path newest_checkpoint(const fs::path &root) {
    std::error_code ec;
    if (complete_checkpoint(root / "latest")) return root / "latest";
    std::vector<std::string> names;
    for (const auto &e : fs::directory_iterator(root, ec)) {
        const std::string n = e.path().filename().string();
        if (e.is_directory(ec) && n.rfind("step-", 0) == 0 && complete_checkpoint(e.path())) names.push_back(n);
    }
    std::sort(names.begin(), names.end()); // zero-padded step numbers sort in step order
    return names.empty() ? fs::path() : root / names.back();
}

// The files that describe a model: its weights, its spec, its tokenizer.
void write_model_files(const fs::path &dir, const NamedTensors &weights, const Json &model_spec,
                       const Tokenizer &tokenizer) {
    save_safetensors((dir / "model.safetensors").string(), weights, {{"format", "pt"}});
    write_json_atomic((dir / "model.json").string(), model_spec);
    write_json_atomic((dir / "tokenizer.json").string(), tokenizer.to_json());
}

NamedTensors model_tensors(Model &model) {
    NamedTensors tensors;
    for (const auto &p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
    for (const auto &b : model.named_buffers()) tensors.emplace_back(b.key(), b.value());
    return tensors;
}

using WriteMore = std::function<void(const std::string &dir)>;

void write_checkpoint_files(const fs::path &dir, const NamedTensors &weights, const Json &model_spec,
                            torch::optim::Optimizer &optimizer, const Tokenizer &tokenizer, const Json &trainer_state,
                            const Json &run_config, const NamedTensors &masters, const WriteMore &write_more) {
    write_model_files(dir, weights, model_spec, tokenizer);
    if (!masters.empty()) save_safetensors((dir / checkpoint_layout::masters).string(), masters, {{"format", "pt"}});
    if (write_more) write_more(dir.string());
    write_json_atomic((dir / "trainer_state.json").string(), trainer_state);
    if (!run_config.is_null()) write_json_atomic((dir / checkpoint_layout::run_config).string(), run_config);
    // Serialised in memory, then written like every other file: LibTorch's file
    // writer throws from a destructor when the disk fills up (an abort).
    std::ostringstream optimizer_bytes;
    torch::save(optimizer, optimizer_bytes);
    write_file_atomic((dir / "optimizer.pt").string(), optimizer_bytes.str());
    write_manifest(dir);
    for (const auto &e : fs::directory_iterator(dir)) fsync_path(e.path());
    fsync_path(dir);
}

} // namespace

void write_model_files(const std::string &dir, Model &model, const Tokenizer &tokenizer) {
    write_model_files(fs::path(dir), model_tensors(model), model.spec().source_json, tokenizer);
}

std::string save_derived_checkpoint(const std::string &out_path, Model &model, const Tokenizer &tokenizer,
                                    const Json &record) {
    fs::path out = fs::absolute(out_path).lexically_normal();
    if (!out.has_filename()) out = out.parent_path(); // "dir/" names dir
    std::error_code ec;
    if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
        throw Error(out.string() + ": exists and is not empty (a new checkpoint folder is written there)");
    const fs::path tmp = out.parent_path() / (".tmp-" + out.filename().string());
    fs::create_directories(out.parent_path());
    remove_tree(tmp);
    fs::create_directories(tmp);
    try {
        write_model_files(tmp.string(), model, tokenizer);
        write_json_atomic((tmp / kImportRecord).string(), record);
        write_manifest(tmp);
        for (const auto &e : fs::directory_iterator(tmp)) fsync_path(e.path());
        fs::remove(out, ec); // the empty folder, if there is one
        fs::rename(tmp, out);
    } catch (...) {
        remove_tree(tmp, ec);
        throw;
    }
    return out.string();
}

namespace {

std::string save_checkpoint_folder(const std::string &root, int64_t step, const NamedTensors &weights,
                                   const Json &model_spec, torch::optim::Optimizer &optimizer,
                                   const Tokenizer &tokenizer, const Json &trainer_state, const Json &run_config,
                                   const NamedTensors &masters, const WriteMore &write_more) {
    const std::string name = run_layout::checkpoint_folder(step);
    const fs::path final_dir = fs::path(root) / name;
    const fs::path tmp_dir = fs::path(root) / (".tmp-" + name);
    const fs::path old_dir = fs::path(root) / (".old-" + name);
    fs::create_directories(root);
    // A writer killed mid-save leaves its temporary folder; one run has one writer, so any is stale.
    for (const auto &e : fs::directory_iterator(root))
        if (e.path().filename().string().rfind(".tmp-", 0) == 0) remove_tree(e.path());
    fs::create_directories(tmp_dir);
    try {
        write_checkpoint_files(tmp_dir, weights, model_spec, optimizer, tokenizer, trainer_state, run_config, masters,
                               write_more);
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

} // namespace

std::string save_checkpoint(const std::string &root, int64_t step, Model &model, torch::optim::Optimizer &optimizer,
                            const Tokenizer &tokenizer, const Json &trainer_state, const Json &run_config,
                            const NamedTensors &masters) {
    return save_checkpoint_folder(root, step, model_tensors(model), model.spec().source_json, optimizer, tokenizer,
                                  trainer_state, run_config, masters, nullptr);
}

std::string save_checkpoint(const std::string &root, int64_t step, const NamedTensors &weights, const Json &model_spec,
                            torch::optim::Optimizer &optimizer, const Tokenizer &tokenizer, const Json &trainer_state,
                            const Json &run_config, const NamedTensors &masters) {
    return save_checkpoint_folder(root, step, weights, model_spec, optimizer, tokenizer, trainer_state, run_config,
                                  masters, nullptr);
}

std::string save_checkpoint_with(const std::string &root, int64_t step, Model &model,
                                 torch::optim::Optimizer &optimizer, const Tokenizer &tokenizer,
                                 const Json &trainer_state, const Json &run_config, const WriteMore &write_more) {
    return save_checkpoint_folder(root, step, model_tensors(model), model.spec().source_json, optimizer, tokenizer,
                                  trainer_state, run_config, {}, write_more);
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
    if (fs::is_regular_file(p / "model.safetensors")) return fs::canonical(p).string();
    for (const fs::path &root : {p, p / "checkpoints"})
        if (const fs::path found = newest_checkpoint(root); !found.empty()) return fs::canonical(found).string();
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
        const fs::path found = newest_checkpoint(e.path() / subdir);
        if (found.empty()) continue;
        const auto t = fs::last_write_time(found / "trainer_state.json", ec);
        if (ec) continue;
        if (best.empty() || t > best_time) {
            best = fs::canonical(found).string();
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
    for (const auto &p : model.named_parameters())
        if (p.value().is_floating_point() && !torch::isfinite(p.value()).all().item<bool>())
            throw Error(file + ": tensor '" + p.key() + "' holds NaN or infinite values; the checkpoint cannot be "
                                                         "evaluated or resumed (an earlier checkpoint may be sound)");
}

void load_optimizer_state(torch::optim::Optimizer &optimizer, const std::string &checkpoint_dir) {
    const std::string file = (fs::path(checkpoint_dir) / "optimizer.pt").string();
    if (!fs::is_regular_file(file)) throw Error(file + ": missing (the checkpoint cannot resume training)");
    check_zip_bounds(file); // before LibTorch's reader, which allocates what the directory claims
    try {
        torch::load(optimizer, file);
    } catch (const c10::Error &e) {
        throw Error(file + ": cannot load the optimiser state: " + e.msg().substr(0, e.msg().find('\n')));
    }
    // The archive pairs states with parameters by position only: a state of
    // another shape (another model with as many parameters) must not reach a step.
    int64_t index = 0;
    for (const auto &group : optimizer.param_groups())
        for (const auto &p : group.params()) {
            if (auto *s = param_state(optimizer, p)) {
                const auto &a = static_cast<torch::optim::AdamWParamState &>(*s);
                if (a.exp_avg().sizes() != p.sizes() || a.exp_avg_sq().sizes() != p.sizes() ||
                    a.exp_avg().scalar_type() != p.scalar_type())
                    throw Error(file + ": the state of parameter " + std::to_string(index) + " has shape " +
                                c10::str(a.exp_avg().sizes()) + ", the parameter " + c10::str(p.sizes()) +
                                ": the optimiser state belongs to another model");
            }
            ++index;
        }
}

LoadedCheckpoint load_checkpoint(const std::string &checkpoint_dir, const Registry &registry) {
    LoadedCheckpoint c;
    c.dir = checkpoint_dir;
    const std::string spec_file = (fs::path(checkpoint_dir) / "model.json").string();
    verify_checkpoint(checkpoint_dir);
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
