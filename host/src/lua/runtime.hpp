// The Lua runtime behind `cdrmix run script.lua [key=value ...]`: one LuaJIT
// state with the `cdrmix` module, the script's shared metrics bus (terminal,
// dashboard), its runs (one per run name, each a Run with its own folder) and
// its command-line overrides.
#pragma once

#include "core/plugin_loader.hpp"
#include "lua/config_sources.hpp"
#include "metrics/metrics.hpp"
#include "metrics/progress.hpp"
#include "run/environment.hpp"
#include "run/run.hpp"
#include "dist/dist_env.hpp"
#include "train/run_control.hpp"

#include <cdrmix/config.hpp>

#include <c10/core/Device.h>
#include <lua.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cdrmix {
class DataSource;
class Model;
class ProcessGroup;
class Tokenizer;
} // namespace cdrmix

namespace cdrmix::lua {

// The model the script's latest trainer trains and its tokenizer: the
// dashboard samples from a copy of these weights. `data` is the config the
// trainer's data source was made from (absent for a source made otherwise), so
// the dashboard can make a source of its own: the trainer's is read by the
// training thread only, and reading it elsewhere would move its positions.
struct TrainingTarget {
    std::shared_ptr<Model> model;
    std::shared_ptr<Tokenizer> tokenizer;
    std::optional<Config> data;
    int64_t batch_size = 0, seq_len = 0; // the trainer's
};

struct RunOptions {
    std::string script;
    std::vector<std::string> overrides; // "key.path=value"
    std::string runs_root = "runs";
    bool headless = false;               // JSON lines on stdout instead of a progress bar
    std::string resume;                  // "", "auto" or a checkpoint/run folder (see wrap_train.cpp)
    // Where the script's relative paths (data files, Lua modules) are taken from
    // and the name config.json records: "" for the script itself. Replay and
    // branch run a run folder's copy of a script as if it were the original.
    std::string script_origin;
    // A branch (`cdrmix branch`): with resume naming a checkpoint, the router swap
    // {"layer", "router"} the first trainer to resume applies right after resuming;
    // its run's config.json records {"of": checkpoint, "step", "swap"} as "branch".
    Json branch_swap;
    uint64_t torch_seed = run_environment::kTorchSeed; // LibTorch's start seed (`cdrmix run --seed`)
    std::vector<LoadedPlugin> plugins;   // written to the run directory
    c10::Device device = c10::Device(c10::DeviceType::CPU); // where models are created (--device)
};

struct Override {
    std::string key;
    std::string value;
    bool used = false;                // applied to the script's config table
    // For an override that added a key the script's table did not have: set
    // once a consumer that checks its keys reads it, and the closest key the
    // table had (for the error when nothing does).
    std::shared_ptr<bool> read;
    std::string closest;
};

class Runtime {
public:
    explicit Runtime(RunOptions options);
    ~Runtime();
    Runtime(const Runtime &) = delete;
    Runtime &operator=(const Runtime &) = delete;

    // Runs the script; prints any error (one line naming the cause, then the
    // Lua traceback) to stderr. Returns the process exit code.
    int run();

    // ---- used by the bindings -------------------------------------------------
    const RunOptions &options() const { return options_; }
    std::vector<Override> &overrides() { return overrides_; }
    MetricsBus &bus() { return bus_; }
    // Shared by every trainer the script makes: Ctrl-C and the dashboard steer through it.
    RunControl &control() { return control_; }
    void set_training_target(TrainingTarget target);
    TrainingTarget training_target() const;
    // cdrmix.data records the config each source was made from (TrainingTarget::data).
    void remember_data_config(const DataSource *data, Config config) { data_configs_.insert_or_assign(data, std::move(config)); }
    std::optional<Config> data_config(const DataSource *data) const;
    // The run of this name (made on first request; its folder only when it opens).
    Run &run(const std::string &name);
    // The --resume option for this trainer: "auto" every time, a path only the first time.
    std::string take_resume_option();
    // RunOptions::branch_swap the first time (null afterwards, and without one).
    Json take_branch_swap() { return std::exchange(options_.branch_swap, Json()); }
    // RunOptions::script_origin, or the script when that is empty.
    const std::string &script_origin() const { return options_.script_origin.empty() ? options_.script : options_.script_origin; }
    // The script's file name without extension: the default run name.
    std::string script_name() const;
    // The script's resolved config (after overrides) and what it built: every
    // run's config.json starts from it. Writes it into every open run.
    Json &resolved() { return resolved_; }
    void write_resolved_config();
    // What every run's config.json starts from: the resolved config, the script and its overrides.
    Json shared_config() const;
    // Where the values of the script's tables came from (YAML files, command line).
    ConfigSources &sources() { return sources_; }
    // The table at idx as a Config for `owner`, with its values' sources.
    Config config_of(lua_State *L, int idx, const std::string &owner) const;
    // Which process this is, from the launcher's environment (read once).
    const DistEnv &dist_env() const { return dist_env_; }
    // The process group of a multi-process run (from the launcher's environment),
    // joined on first use; a group of one without a launcher.
    ProcessGroup &dist();
    // Throws for the first override that added a key nothing has read: called
    // before the first training step (trainer:run, the first optimiser step)
    // and when the script ends.
    void check_overrides() const;
    // Headless output prints one step record per this many steps.
    void set_log_every(int64_t n);

    static Runtime &from(lua_State *L);

private:
    void open_module();

    RunOptions options_;
    std::vector<Override> overrides_;
    lua_State *L_ = nullptr;
    MetricsBus bus_;
    RunControl control_;
    mutable std::mutex target_mutex_;
    TrainingTarget target_;
    std::map<const DataSource *, Config> data_configs_; // Lua thread only
    std::map<std::string, std::unique_ptr<Run>> runs_;
    std::shared_ptr<ProgressSink> progress_;
    Json resolved_ = Json::object();
    ConfigSources sources_;
    bool resume_path_taken_ = false;
    DistEnv dist_env_;
    std::unique_ptr<ProcessGroup> dist_;
};

// Module sections, each adding its functions to the table at the top of the stack.
void open_tensor(lua_State *L);
void open_model(lua_State *L);
void open_data(lua_State *L);
void open_config(lua_State *L);    // wrap_config.cpp: cdrmix.config, cdrmix.yaml
void open_optimizer(lua_State *L); // wrap_optimizer.cpp: cdrmix.adamw, cdrmix.schedule, cdrmix.clip_grad_norm
void open_trainer(lua_State *L);   // wrap_trainer.cpp: cdrmix.trainer
void open_cdrmix(lua_State *L);    // wrap_cdrmix.cpp: cdrmix.log, threads, clock, plugins
void open_dist(lua_State *L);      // wrap_dist.cpp: cdrmix.dist

} // namespace cdrmix::lua
