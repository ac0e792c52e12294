// A run: one folder runs/<name>-<YYYYmmdd-HHMMSS>[-N]/ and everything about
// where its files go. The Run owns the folder's name and layout, the resolved
// config written into it, the lookup of the checkpoint a run resumes from, the
// place its checkpoints go, and its own metrics bus (metrics.jsonl), whose
// records also reach the script's shared sinks (terminal, dashboard). It hands
// out trainers that are complete: checkpoint root, run config and control set.
//
// The folder is made on first use (open()), never before, and a run that
// failed before it recorded a step or wrote a checkpoint removes it again
// (abandon_if_empty), so a script that fails early leaves nothing behind.
//
// In a multi-process run (settings.group) rank 0 alone makes and writes the
// folder; the other ranks learn its path from rank 0 and write nothing, and
// the checkpoint to resume from is rank 0's choice. open() and find_resume()
// are then collective: every rank calls them, in the same order.
//
// Threads: one thread (the script's) uses a Run; its bus may be read by sinks
// on other threads as MetricsBus allows.
#pragma once

#include "metrics/metrics.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/config.hpp>

#include <functional>
#include <memory>
#include <string>

namespace cdrmix {

class Model;
class DataSource;
class ProcessGroup;
class Trainer;
struct TrainConfig;
struct RunControl;

struct RunSettings {
    std::string runs_root = "runs";
    std::string name;      // the run's name (a trainer's `name`, else the script's file name)
    std::string script;    // copied into the folder ("" for none)
    Json plugins = Json::array(); // written as plugins.json
    ProcessGroup *group = nullptr; // a multi-process run's group (outlives the Run); null alone
};

class Run {
public:
    // parent: the bus whose sinks also receive this run's records (may be null).
    Run(RunSettings settings, MetricsBus *parent);
    ~Run();
    Run(const Run &) = delete;
    Run &operator=(const Run &) = delete;

    // Makes the folder (with the script copy, plugins.json, config.json and
    // metrics.jsonl) on the first call; returns its path.
    const std::string &open();
    bool is_open() const { return !path_.empty(); }
    // Whether this process writes the folder (rank 0, or a single process).
    bool writes() const;
    const std::string &path() const { return path_; }
    const std::string &name() const { return settings_.name; }
    std::string file(const std::string &name) const { return path_ + "/" + name; }
    std::string checkpoint_root() const { return file(run_layout::checkpoints); }

    // The checkpoint to resume from: "" for a fresh start; "auto" is the newest
    // checkpoint of an earlier run of this name ("" when there is none); any
    // other text is a checkpoint, run folder or checkpoints folder.
    std::string find_resume(const std::string &spec) const;

    // config.json: the script's sections (config, model, data, script,
    // overrides), shared by every run of the script, with this run's own
    // sections (train, resumed_from) on top. Each setter rewrites the file
    // when the folder exists.
    void set_shared_config(Json shared);
    void set_own(const std::string &key, Json value);
    Json config() const;

    MetricsBus &bus() { return bus_; }

    // A trainer whose checkpoints go to this run's folder and carry its config.
    std::shared_ptr<Trainer> make_trainer(std::shared_ptr<Model> model, std::shared_ptr<DataSource> data,
                                          const TrainConfig &config, RunControl *control);

    // Removes the folder when nothing worth keeping was written: no step record
    // and no checkpoint. Returns whether it did.
    bool abandon_if_empty();

private:
    RunSettings settings_;
    MetricsBus bus_;
    std::string path_;
    Json shared_ = Json::object(), own_ = Json::object();
    void write_config();
    std::shared_ptr<MetricsSink> steps_seen_;
    // Makes the folder and its first files; returns its path.
    std::string make_folder();
    // Runs `decide` on rank 0 and returns its result on every rank (its error too).
    std::string rank0_decides(const std::function<std::string()> &decide) const;
};

} // namespace cdrmix
