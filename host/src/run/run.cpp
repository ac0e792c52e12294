#include "run/run.hpp"

#include "core/files.hpp"
#include "dist/process_group.hpp"
#include "metrics/record_fields.hpp"
#include "metrics/tensorboard.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <filesystem>

namespace fs = std::filesystem;

namespace cdrmix {


namespace {

// Counts step records and checkpoints: whether the run has anything worth keeping.
class ProgressMarker : public MetricsSink {
public:
    void write(const Json &record) override {
        const std::string event = record.value("event", "");
        if (event == "step" || event == "checkpoint" || event == "log") kept = true;
    }
    bool kept = false;
};

} // namespace

Run::Run(RunSettings settings, MetricsBus *parent)
    : settings_(std::move(settings)), bus_(parent), steps_seen_(std::make_shared<ProgressMarker>()) {
    if (settings_.name.empty()) throw Error("run: empty run name");
    bus_.add_sink(steps_seen_);
}

Run::~Run() = default;

bool Run::writes() const { return !settings_.group || settings_.group->rank() == 0; }

std::string Run::rank0_decides(const std::function<std::string()> &decide) const {
    if (!settings_.group || settings_.group->world_size() == 1) return decide();
    // An error on rank 0 travels as "\x01message", so every rank fails with the same line.
    std::string result;
    if (settings_.group->rank() == 0) {
        try {
            result = decide();
        } catch (const std::exception &e) {
            settings_.group->share(std::string("\x01") + e.what());
            throw;
        }
    }
    result = settings_.group->share(result);
    if (!result.empty() && result[0] == '\x01') throw Error(result.substr(1));
    return result;
}

const std::string &Run::open() {
    if (!path_.empty()) return path_;
    if (!writes()) {
        path_ = rank0_decides({});
        return path_;
    }
    path_ = rank0_decides([this] { return make_folder(); });
    bus_.publish({{fields::event, fields::events::run},
                  {fields::run_record::dir, path_},
                  {fields::run_record::name, settings_.name}});
    return path_;
}

std::string Run::make_folder() {
    std::error_code ec;
    fs::create_directories(settings_.runs_root, ec);
    if (ec) throw Error(settings_.runs_root + ": cannot create the runs folder: " + ec.message());
    const std::time_t now = std::time(nullptr);
    std::string candidate;
    for (int attempt = 1;; ++attempt) {
        candidate = settings_.runs_root + "/" + run_folder::make(settings_.name, now, attempt);
        if (fs::create_directory(candidate, ec)) break;
        if (ec) throw Error(candidate + ": cannot create the run folder: " + ec.message());
    }
    // A half-made folder is removed again: the run either starts whole or leaves nothing.
    try {
        fs::create_directory(candidate + "/" + run_layout::checkpoints, ec);
        if (ec) throw Error(candidate + "/" + run_layout::checkpoints + ": cannot create: " + ec.message());
        if (!settings_.script.empty()) {
            fs::copy_file(settings_.script, candidate + "/" + fs::path(settings_.script).filename().string(), ec);
            if (ec) throw Error(candidate + ": cannot copy the script " + settings_.script + ": " + ec.message());
        }
        write_json_atomic(candidate + "/" + run_layout::plugins, settings_.plugins);
        write_json_atomic(candidate + "/" + run_layout::config, config());
        bus_.add_sink(std::make_shared<JsonlSink>(candidate + "/" + run_layout::metrics));
        bus_.add_sink(std::make_shared<TensorBoardSink>(candidate));
    } catch (...) {
        remove_tree(candidate);
        throw;
    }
    return candidate;
}

Json Run::config() const {
    Json merged = shared_;
    for (const auto &[key, value] : own_.items()) merged[key] = value;
    return merged;
}

void Run::set_shared_config(Json shared) {
    shared_ = std::move(shared);
    write_config();
}

void Run::set_own(const std::string &key, Json value) {
    own_[key] = std::move(value);
    write_config();
}

void Run::write_config() {
    if (path_.empty() || !writes()) return;
    write_json_atomic(file(run_layout::config), config());
}

std::string Run::find_resume(const std::string &spec) const {
    if (spec.empty()) return "";
    return rank0_decides([&] {
        if (spec != "auto") return resolve_checkpoint(spec);
        return find_latest_checkpoint(settings_.runs_root, settings_.name);
    });
}

std::shared_ptr<Trainer> Run::make_trainer(std::shared_ptr<Model> model, std::shared_ptr<DataSource> data,
                                           const TrainConfig &config, RunControl *control) {
    auto trainer = std::make_shared<Trainer>(std::move(model), std::move(data), config, bus_, std::string());
    trainer->set_control(control);
    trainer->set_process_group(settings_.group);
    return trainer;
}

bool Run::abandon_if_empty() {
    if (path_.empty() || !writes() || static_cast<ProgressMarker &>(*steps_seen_).kept) return false;
    bus_.finish();
    remove_tree(path_);
    path_.clear();
    return true;
}

} // namespace cdrmix
