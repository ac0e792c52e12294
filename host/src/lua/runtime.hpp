// The Lua runtime behind `cdrmix run script.lua [key=value ...]`: one LuaJIT
// state with the `cdrmix` module, the script's metrics bus and its lazily
// created run directory.
#pragma once

#include "core/plugin_loader.hpp"
#include "metrics/metrics.hpp"
#include "metrics/progress.hpp"
#include "metrics/run_dir.hpp"
#include "train/run_control.hpp"

#include <cdrmix/config.hpp>

#include <c10/core/Device.h>
#include <lua.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cdrmix {
class Model;
class Tokenizer;
} // namespace cdrmix

namespace cdrmix::lua {

// The model the script's latest trainer trains and its tokenizer: the
// dashboard samples from a copy of these weights.
struct TrainingTarget {
    std::shared_ptr<Model> model;
    std::shared_ptr<Tokenizer> tokenizer;
};

struct RunOptions {
    std::string script;
    std::vector<std::string> overrides; // "key.path=value"
    std::string runs_root = "runs";
    bool headless = false;               // JSON lines on stdout instead of a progress bar
    std::string resume;                  // "", "auto" or a checkpoint/run folder (see wrap_train.cpp)
    std::vector<LoadedPlugin> plugins;   // written to the run directory
    c10::Device device = c10::Device(c10::DeviceType::CPU); // where models are created (--device)
};

struct Override {
    std::string key;
    std::string value;
    bool used = false;
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
    // Creates runs/<name>-<stamp>/ on first use (with script copy and plugin list).
    RunDir &run_dir(const std::string &name);
    bool has_run_dir() const { return static_cast<bool>(run_dir_); }
    // The script's resolved config (after overrides) and what it built, for config.json.
    Json &resolved() { return resolved_; }
    void write_resolved_config();
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
    std::unique_ptr<RunDir> run_dir_;
    std::shared_ptr<ProgressSink> progress_;
    Json resolved_ = Json::object();
};

// Module sections, each adding its functions to the table at the top of the stack.
void open_tensor(lua_State *L);
void open_model(lua_State *L);
void open_data(lua_State *L);
void open_train(lua_State *L);

} // namespace cdrmix::lua
