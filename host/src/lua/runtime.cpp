#include "lua/runtime.hpp"

#include "core/device.hpp"
#include "dist/process_group.hpp"

#include "lua/lua_util.hpp"
#include "lua/module_state.hpp"
#include "lua/text_only.hpp"
#include "metrics/progress.hpp"
#include "run/environment.hpp"
#include "train/interrupt.hpp"

#include <cdrmix/error.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

namespace fs = std::filesystem;

namespace cdrmix::lua {

namespace {
const char *kRuntimeKey = "cdrmix.runtime";
} // namespace

// The runtimes alive in this process: the registry entry a script could
// overwrite (through the debug library) is trusted only if it names one.
namespace {
std::mutex live_runtimes_mutex;
std::set<const Runtime *> live_runtimes;
} // namespace

Runtime &Runtime::from(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, kRuntimeKey);
    auto *rt = lua_type(L, -1) == LUA_TLIGHTUSERDATA ? static_cast<Runtime *>(lua_touserdata(L, -1)) : nullptr;
    lua_pop(L, 1);
    std::lock_guard<std::mutex> lock(live_runtimes_mutex);
    if (!rt || !live_runtimes.count(rt)) throw Error("the script replaced the registry's '" + std::string(kRuntimeKey) + "' entry");
    return *rt;
}

Runtime::Runtime(RunOptions options) : options_(std::move(options)), dist_env_(dist_env_from_environment()) {
    for (const auto &o : options_.overrides) {
        auto eq = o.find('=');
        if (eq == std::string::npos || eq == 0)
            throw Error("bad override '" + o + "': expected key=value, e.g. train.steps=100");
        overrides_.push_back({o.substr(0, eq), o.substr(eq + 1), false, nullptr, ""});
    }
    // LibTorch seeds its default generator nondeterministically; a fixed start
    // makes a script's model initialisation (and so the whole run) reproducible.
    at::Generator gen = at::detail::getDefaultCPUGenerator(); // a handle to the shared generator
    {
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_current_seed(options_.torch_seed);
    }
    L_ = luaL_newstate();
    if (!L_) throw Error("cannot create a Lua state (out of memory)");
    luaL_openlibs(L_);
    text_chunks_only(L_);
    lua_pushlightuserdata(L_, this);
    lua_setfield(L_, LUA_REGISTRYINDEX, kRuntimeKey);
    {
        std::lock_guard<std::mutex> lock(live_runtimes_mutex);
        live_runtimes.insert(this);
    }
    progress_ = std::make_shared<ProgressSink>(!options_.headless && isatty(STDOUT_FILENO), 10);
    bus_.add_sink(progress_);
    if (auto backend = backend_of(Registry::global(), options_.device))
        bus_.set_device_memory([backend] { return backend->memory(); });
    open_module();
}

Runtime::~Runtime() {
    if (L_) lua_close(L_);
    std::lock_guard<std::mutex> lock(live_runtimes_mutex);
    live_runtimes.erase(this);
}

void Runtime::open_module() {
    lua_newtable(L_);
    open_tensor(L_);
    open_model(L_);
    open_data(L_);
    open_config(L_);
    open_optimizer(L_);
    open_trainer(L_);
    open_cdrmix(L_);
    open_dist(L_);
    open_module_functions(L_);
    lua_pushstring(L_, script_origin().c_str());
    lua_setfield(L_, -2, "script");
    // Reachable both as the global `cdrmix` and through require("cdrmix").
    lua_getglobal(L_, "package");
    lua_getfield(L_, -1, "loaded");
    lua_pushvalue(L_, -3);
    lua_setfield(L_, -2, "cdrmix");
    lua_pop(L_, 2);
    lua_setglobal(L_, "cdrmix");
}

void Runtime::set_training_target(TrainingTarget target) {
    std::lock_guard<std::mutex> lock(target_mutex_);
    target_ = std::move(target);
}

TrainingTarget Runtime::training_target() const {
    std::lock_guard<std::mutex> lock(target_mutex_);
    return target_;
}

std::optional<Config> Runtime::data_config(const DataSource *data) const {
    const auto it = data_configs_.find(data);
    if (it == data_configs_.end()) return std::nullopt;
    return it->second;
}

void Runtime::set_log_every(int64_t n) { progress_->set_log_every(n); }

Run &Runtime::run(const std::string &name) {
    auto &slot = runs_[name];
    if (!slot) {
        RunSettings settings;
        settings.runs_root = options_.runs_root;
        settings.name = name;
        settings.script = options_.script;
        settings.plugins = run_environment::plugin_records(options_.plugins);
        // A multi-process run: rank 0 writes the folder and alone reaches the terminal and the dashboard.
        if (dist_env_.world_size > 1) settings.group = &dist();
        slot = std::make_unique<Run>(std::move(settings), dist_env_.rank == 0 ? &bus_ : nullptr);
        slot->set_shared_config(shared_config());
    }
    return *slot;
}

ProcessGroup &Runtime::dist() {
    if (!dist_) dist_ = std::make_unique<ProcessGroup>(dist_env_, std::chrono::seconds(dist_env_.timeout_s));
    return *dist_;
}

std::string Runtime::take_resume_option() {
    if (options_.resume == "auto") return options_.resume;
    if (resume_path_taken_) return "";
    resume_path_taken_ = true;
    return options_.resume;
}

std::string Runtime::script_name() const { return fs::path(options_.script).stem().string(); }

Json Runtime::shared_config() const {
    Json c = resolved_;
    c["script"] = script_origin();
    c["overrides"] = options_.overrides;
    c[run_environment::keys::environment] =
        run_environment::current(options_.device.str(), dist_env_.world_size, options_.torch_seed);
    return c;
}

void Runtime::write_resolved_config() {
    for (auto &[name, r] : runs_) r->set_shared_config(shared_config());
}

Config Runtime::config_of(lua_State *L, int idx, const std::string &owner) const {
    return sources_.config(L, idx, owner, script_origin());
}

void Runtime::check_overrides() const {
    for (const auto &o : overrides_) {
        if (!o.read || *o.read) continue;
        const size_t dot = o.key.rfind('.');
        const std::string prefix = dot == std::string::npos ? "" : o.key.substr(0, dot + 1);
        const std::string table = dot == std::string::npos ? "config" : "table '" + o.key.substr(0, dot) + "'";
        throw Error("override '" + o.key + "=" + o.value + "' is never used: the script's " + table + " had no key '" +
                    o.key.substr(prefix.size()) + "' and nothing that checks its keys read it" +
                    (o.closest.empty() ? std::string() : "; did you mean '" + prefix + o.closest + "'?"));
    }
}

int Runtime::run() {
    lua_pushcfunction(L_, traceback_handler);
    const int handler = lua_gettop(L_);
    // Text only: a corrupted bytecode file can crash LuaJIT's loader.
    if (const int status = luaL_loadfilex(L_, options_.script.c_str(), "t"); status != 0) {
        // LuaJIT's message for a binary chunk names neither the file nor the cause.
        const std::string message = std::string(lua_tostring(L_, -1));
        if (status == LUA_ERRSYNTAX && message.find("wrong mode") != std::string::npos)
            std::fprintf(stderr, "cdrmix: error: %s: a binary (bytecode) chunk; cdrmix runs Lua source only\n",
                         options_.script.c_str());
        else
            std::fprintf(stderr, "cdrmix: error: %s\n", message.c_str());
        return 1;
    }
    // The script sees its own path as arg[0] and the overrides as arg[1..n], like `luajit script.lua`.
    lua_createtable(L_, static_cast<int>(options_.overrides.size()), 1);
    lua_pushstring(L_, script_origin().c_str());
    lua_rawseti(L_, -2, 0);
    for (size_t i = 0; i < options_.overrides.size(); ++i) {
        lua_pushstring(L_, options_.overrides[i].c_str());
        lua_rawseti(L_, -2, static_cast<int>(i + 1));
    }
    lua_setglobal(L_, "arg");

    int code = 0;
    if (lua_pcall(L_, 0, 0, handler) != 0) {
        std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "(error object is not a string)";
        auto nl = msg.find('\n');
        if (control_.interrupted) { // Ctrl-C ended the script on purpose: no traceback
            std::fprintf(stderr, "cdrmix: %s\n", msg.substr(0, nl).c_str());
            for (auto &[name, r] : runs_) r->bus().finish();
            bus_.finish();
            return kInterruptedExitCode;
        }
        std::fprintf(stderr, "cdrmix: error: %s\n", msg.substr(0, nl).c_str());
        if (nl != std::string::npos) std::fprintf(stderr, "%s\n", msg.substr(nl + 1).c_str());
        code = 1;
    } else {
        for (const auto &o : overrides_) {
            if (!o.used) {
                std::fprintf(stderr, "cdrmix: error: override '%s=%s' was never applied: the script %s\n",
                             o.key.c_str(), o.value.c_str(),
                             resolved_.contains("config") ? "has no such key" : "never called cdrmix.config{...}");
                code = 1;
            }
        }
        try {
            check_overrides();
        } catch (const Error &e) {
            std::fprintf(stderr, "cdrmix: error: %s\n", e.what());
            code = 1;
        }
    }
    for (auto &[name, r] : runs_) r->bus().finish();
    bus_.finish();
    return control_.interrupted ? kInterruptedExitCode : code;
}

} // namespace cdrmix::lua
