// Training from Lua, at two levels:
//   cdrmix.trainer{model = m, data = d, steps = 600, ...}:run{on_step = f, on_eval = g,
//                                                              on_checkpoint = h, on_sample = s}
// or a hand-written loop with cdrmix.adamw, cdrmix.schedule, model:loss,
// (loss / accum):backward(), cdrmix.clip_grad_norm and opt:step (see experiments/hand_loop.lua).
//
// Checkpoints of a trainer go to <run>/checkpoints/ when the trainer is named
// like the run folder (the first trainer's name, or the script's for a run
// folder made by cdrmix.log), else to <run>/checkpoints/<name>/ (several
// trainers per script). Resuming: trainer{resume = "auto" | PATH} or `cdrmix run --resume`;
// "auto" picks the newest checkpoint of an earlier run of the same name and
// starts fresh when there is none; a PATH from the command line goes to the
// script's first trainer:run().
// Also: cdrmix.config (the script's defaults + command-line overrides),
// cdrmix.log (metrics), cdrmix.threads / set_threads, cdrmix.plugins.
#include "core/system_info.hpp"
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "lua/wrap_data.hpp"
#include "lua/wrap_model.hpp"
#include "lua/wrap_tensor.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

#include <chrono>
#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>

namespace cdrmix::lua {

namespace {

constexpr const char *kOptimizer = "cdrmix.Optimizer";
constexpr const char *kTrainer = "cdrmix.Trainer";

// ---- cdrmix.config: defaults table + key=value overrides ---------------------------

// Converts an override's text to the type of the value it replaces.
void push_override_value(lua_State *L, const Override &o, int existing_type) {
    const std::string where = "override '" + o.key + "=" + o.value + "'";
    char *end = nullptr;
    const double num = std::strtod(o.value.c_str(), &end);
    const bool is_num = !o.value.empty() && end && *end == '\0';
    switch (existing_type) {
    case LUA_TNUMBER:
        if (!is_num) throw Error(where + ": '" + o.value + "' is not a number");
        lua_pushnumber(L, num);
        return;
    case LUA_TBOOLEAN:
        if (o.value != "true" && o.value != "false") throw Error(where + ": expected true or false");
        lua_pushboolean(L, o.value == "true");
        return;
    case LUA_TSTRING: lua_pushstring(L, o.value.c_str()); return;
    case LUA_TTABLE: throw Error(where + ": '" + o.key + "' is a table; set one of its keys (" + o.key + ".<key>=...)");
    default: // new key: infer the type from the text
        if (is_num) lua_pushnumber(L, num);
        else if (o.value == "true" || o.value == "false") lua_pushboolean(L, o.value == "true");
        else lua_pushstring(L, o.value.c_str());
    }
}

void apply_override(lua_State *L, int table, Override &o) {
    lua_pushvalue(L, table);
    std::string path;
    size_t start = 0;
    for (;;) {
        const size_t dot = o.key.find('.', start);
        const std::string part = o.key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (part.empty()) throw Error("override '" + o.key + "': empty key segment");
        if (dot == std::string::npos) {
            lua_getfield(L, -1, part.c_str());
            const int type = lua_type(L, -1);
            lua_pop(L, 1);
            push_override_value(L, o, type);
            lua_setfield(L, -2, part.c_str());
            lua_pop(L, 1);
            o.used = true;
            return;
        }
        path += (path.empty() ? "" : ".") + part;
        lua_getfield(L, -1, part.c_str());
        if (!lua_istable(L, -1))
            throw Error("override '" + o.key + "': the script's config has no table '" + path + "'");
        lua_remove(L, -2);
        start = dot + 1;
    }
}

int l_config(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Runtime &rt = Runtime::from(L);
    for (auto &o : rt.overrides()) apply_override(L, 1, o);
    rt.resolved()["config"] = to_json(L, 1);
    rt.write_resolved_config();
    lua_settop(L, 1);
    return 1;
}

// ---- optimiser -----------------------------------------------------------------

using OptimizerPtr = std::shared_ptr<torch::optim::AdamW>;

int l_adamw(lua_State *L) {
    auto &m = check_model(L, 1);
    const double lr = opt_number_field(L, 2, "lr", 1e-3);
    auto opt = make_adamw(*m, lr, opt_number_field(L, 2, "weight_decay", 0.1), opt_number_field(L, 2, "beta1", 0.9),
                          opt_number_field(L, 2, "beta2", 0.99), opt_number_field(L, 2, "eps", 1e-8));
    push<OptimizerPtr>(L, OptimizerPtr(std::move(opt)), kOptimizer);
    return 1;
}

int l_opt_step(lua_State *L) {
    check<OptimizerPtr>(L, 1, kOptimizer)->step();
    return 0;
}

int l_opt_zero_grad(lua_State *L) {
    check<OptimizerPtr>(L, 1, kOptimizer)->zero_grad();
    return 0;
}

int l_opt_set_lr(lua_State *L) {
    auto &opt = check<OptimizerPtr>(L, 1, kOptimizer);
    const double lr = luaL_checknumber(L, 2);
    for (auto &g : opt->param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
    return 0;
}

int l_opt_lr(lua_State *L) {
    auto &opt = check<OptimizerPtr>(L, 1, kOptimizer);
    lua_pushnumber(L, static_cast<torch::optim::AdamWOptions &>(opt->param_groups().front().options()).lr());
    return 1;
}

// cdrmix.clip_grad_norm(model, max_norm): returns the norm before clipping; max_norm 0 only measures it.
int l_clip_grad_norm(lua_State *L) {
    lua_pushnumber(L, clip_gradients(*check_model(L, 1), luaL_optnumber(L, 2, 0.0)));
    return 1;
}

// ---- learning-rate schedule ---------------------------------------------------------

constexpr const char *kSchedule = "cdrmix.Schedule";

// cdrmix.schedule{lr =, min_lr =, warmup_steps =, steps =, kind = "cosine" | "linear" | "constant"}
int l_schedule(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Config c(to_json(L, 1), "schedule", Runtime::from(L).options().script);
    LrSchedule s;
    s.lr = c.get_double("lr", s.lr);
    s.min_lr = c.get_double("min_lr", s.lr * 0.1);
    s.total_steps = c.require_int("steps");
    s.warmup_steps = c.get_int("warmup_steps", 0);
    s.kind = c.get_string("kind", s.kind);
    c.check_unused();
    s.at(0); // an unknown kind fails here, not mid-loop
    push<LrSchedule>(L, s, kSchedule);
    return 1;
}

// schedule:at(step): the learning rate of the step-th update, counting from 1 like a Lua loop.
int l_schedule_at(lua_State *L) {
    const auto &s = check<LrSchedule>(L, 1, kSchedule);
    lua_pushnumber(L, s.at(static_cast<int64_t>(luaL_checknumber(L, 2)) - 1));
    return 1;
}

// ---- trainer -------------------------------------------------------------------

struct TrainerBox {
    std::shared_ptr<Trainer> trainer;
    std::string name;
    std::string resume; // "", "auto" or a path, from the trainer table
};

constexpr const char *kCliResumeUsed = "cdrmix.cli_resume_used"; // a --resume PATH went to a trainer already

// The run folder's name without its -YYYYmmdd-HHMMSS[-N] stamp (RunDir's naming).
std::string run_name(const RunDir &dir, const std::string &fallback) {
    static const std::regex stamp(R"(-\d{8}-\d{6}(-\d+)?$)");
    const std::string base = std::filesystem::path(dir.path()).filename().string();
    std::smatch m;
    return std::regex_search(base, m, stamp) ? base.substr(0, static_cast<size_t>(m.position(0))) : fallback;
}

// What config.json of the run holds, for the checkpoints' copy.
Json run_config(Runtime &rt) {
    Json j = rt.resolved();
    j["script"] = rt.options().script;
    j["overrides"] = rt.options().overrides;
    return j;
}

bool registry_flag(lua_State *L, const char *key) {
    lua_getfield(L, LUA_REGISTRYINDEX, key);
    const bool set = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return set;
}

// Where this trainer keeps its checkpoints, relative to the run folder: a
// trainer named like the run uses checkpoints/, others checkpoints/<name>/.
std::string checkpoint_subdir(const RunDir &dir, const std::string &trainer_name) {
    return run_name(dir, trainer_name) == trainer_name ? "checkpoints" : "checkpoints/" + trainer_name;
}

// The checkpoint to resume from ("" for a fresh start).
std::string resume_source(lua_State *L, Runtime &rt, const TrainerBox &box, const RunDir &dir,
                          const std::string &subdir) {
    std::string spec = box.resume;
    if (spec.empty() && !rt.options().resume.empty()) {
        if (rt.options().resume == "auto") {
            spec = "auto";
        } else if (!registry_flag(L, kCliResumeUsed)) {
            spec = rt.options().resume;
            lua_pushboolean(L, 1);
            lua_setfield(L, LUA_REGISTRYINDEX, kCliResumeUsed);
        }
    }
    if (spec.empty()) return "";
    if (spec != "auto") return resolve_checkpoint(spec);
    const std::string found = find_latest_checkpoint(rt.options().runs_root, run_name(dir, box.name), subdir);
    if (found.empty())
        std::fprintf(stderr, "cdrmix: no earlier checkpoint of '%s' under %s; starting from step 0\n", box.name.c_str(),
                     rt.options().runs_root.c_str());
    return found;
}

int l_trainer(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Runtime &rt = Runtime::from(L);
    lua_getfield(L, 1, "model");
    auto model = check_model(L, -1);
    lua_getfield(L, 1, "data");
    auto data = check_data(L, -1);
    lua_pop(L, 2);
    const std::string stem = std::filesystem::path(rt.options().script).stem().string();
    const std::string name = opt_string_field(L, 1, "name", stem);
    const std::string resume = opt_string_field(L, 1, "resume", "");
    Json cfg = Json::object();
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (key != "model" && key != "data" && key != "name" && key != "resume") cfg[key] = to_json(L, -1);
        lua_pop(L, 1);
    }
    Config c(cfg, "trainer", rt.options().script);
    TrainConfig tc = TrainConfig::from_config(c, model->device().type());
    c.check_unused(); // from_config reads every key it knows: anything left is a typo
    rt.resolved()["train"] = tc.to_json();
    push<TrainerBox>(L, TrainerBox{nullptr, name, resume}, kTrainer);
    auto &box = check<TrainerBox>(L, -1, kTrainer);
    box.trainer = std::make_shared<Trainer>(model, data, tc, rt.bus(), std::string());
    box.trainer->set_control(&rt.control());
    rt.set_training_target({model, data->tokenizer()});
    return 1;
}

int l_trainer_run(lua_State *L) {
    auto &box = check<TrainerBox>(L, 1, kTrainer);
    Runtime &rt = Runtime::from(L);
    RunDir &dir = rt.run_dir(box.name);
    rt.write_resolved_config();
    rt.set_log_every(box.trainer->config().log_every);
    TrainCallbacks cb;
    auto bind = [&](const char *name, std::function<bool(const Json &)> &slot) {
        lua_getfield(L, 2, name);
        if (lua_isfunction(L, -1)) {
            const int ref = luaL_ref(L, LUA_REGISTRYINDEX);
            slot = [L, ref](const Json &rec) {
                lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
                return call_with_json(L, rec);
            };
        } else {
            lua_pop(L, 1);
        }
    };
    if (lua_istable(L, 2)) {
        bind("on_step", cb.on_step);
        bind("on_eval", cb.on_eval);
        bind("on_checkpoint", cb.on_checkpoint);
        bind("on_sample", cb.on_sample);
    }
    const std::string subdir = checkpoint_subdir(dir, box.name);
    const std::string from = resume_source(L, rt, box, dir, subdir);
    if (!from.empty()) {
        box.trainer->resume(from);
        rt.resolved()["resumed_from"] = from;
        rt.write_resolved_config();
    }
    box.trainer->set_checkpoint_root(dir.path() + "/" + subdir);
    box.trainer->set_run_config(run_config(rt));
    Json end = box.trainer->run(cb);
    end["run_dir"] = dir.path();
    if (rt.control().interrupted)
        throw Error("interrupted (Ctrl-C) at step " + std::to_string(box.trainer->step()) + "; " +
                    (box.trainer->last_checkpoint().empty() ? std::string("no checkpoint written")
                                                            : "checkpoint " + box.trainer->last_checkpoint() +
                                                                  "; continue with --resume auto"));
    push_json(L, end);
    return 1;
}

int l_trainer_checkpoint(lua_State *L) {
    auto &box = check<TrainerBox>(L, 1, kTrainer);
    Runtime &rt = Runtime::from(L);
    RunDir &dir = rt.run_dir(box.name);
    box.trainer->set_checkpoint_root(dir.path() + "/" + checkpoint_subdir(dir, box.name));
    box.trainer->set_run_config(run_config(rt));
    const std::string path = box.trainer->checkpoint();
    lua_pushstring(L, path.c_str());
    return 1;
}

int l_trainer_step(lua_State *L) {
    lua_pushinteger(L, static_cast<lua_Integer>(check<TrainerBox>(L, 1, kTrainer).trainer->step()));
    return 1;
}

int l_trainer_evaluate(lua_State *L) {
    lua_pushnumber(L, check<TrainerBox>(L, 1, kTrainer).trainer->evaluate());
    return 1;
}

// ---- metrics, threads, plugins ----------------------------------------------------

int l_log(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Runtime &rt = Runtime::from(L);
    Json rec = to_json(L, 1);
    if (!rec.is_object()) throw Error("cdrmix.log expects a table of named values");
    rt.run_dir(std::filesystem::path(rt.options().script).stem().string());
    rec["event"] = "log";
    rt.bus().publish(rec);
    return 0;
}

int l_threads(lua_State *L) {
    lua_pushinteger(L, at::get_num_threads());
    return 1;
}

int l_set_threads(lua_State *L) {
    lua_pushinteger(L, configure_threads(static_cast<int>(luaL_checkinteger(L, 1))));
    return 1;
}

// Seconds on a monotonic clock, for scripts that budget wall time (os.time has
// one-second resolution and os.clock counts CPU time).
int l_clock(lua_State *L) {
    lua_pushnumber(L, std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
    return 1;
}

int l_plugins(lua_State *L) {
    Json list = Json::array();
    for (const auto &f : Registry::global().list())
        list.push_back({{"kind", kind_name(f.kind)}, {"name", f.name}, {"plugin", f.plugin},
                        {"version", f.plugin_version}, {"file", f.file}});
    push_json(L, list);
    return 1;
}

int l_trainer_tostring(lua_State *L) {
    auto &box = check<TrainerBox>(L, 1, kTrainer);
    lua_pushstring(L, ("cdrmix.Trainer(" + box.name + ", " + std::to_string(box.trainer->config().steps) + " steps)").c_str());
    return 1;
}

} // namespace

void open_train(lua_State *L) {
    static const luaL_Reg opt_methods[] = {{"step", safe<l_opt_step>},
                                           {"zero_grad", safe<l_opt_zero_grad>},
                                           {"set_lr", safe<l_opt_set_lr>},
                                           {"lr", safe<l_opt_lr>},
                                           {nullptr, nullptr}};
    define_class<OptimizerPtr>(L, kOptimizer, opt_methods);
    static const luaL_Reg schedule_methods[] = {{"at", safe<l_schedule_at>}, {nullptr, nullptr}};
    define_class<LrSchedule>(L, kSchedule, schedule_methods);
    static const luaL_Reg trainer_methods[] = {{"run", safe<l_trainer_run>},
                                               {"evaluate", safe<l_trainer_evaluate>},
                                               {"checkpoint", safe<l_trainer_checkpoint>},
                                               {"step", safe<l_trainer_step>},
                                               {nullptr, nullptr}};
    static const luaL_Reg trainer_meta[] = {{"__tostring", safe<l_trainer_tostring>}, {nullptr, nullptr}};
    define_class<TrainerBox>(L, kTrainer, trainer_methods, trainer_meta);

    static const luaL_Reg functions[] = {{"config", safe<l_config>},
                                         {"adamw", safe<l_adamw>},
                                         {"schedule", safe<l_schedule>},
                                         {"clip_grad_norm", safe<l_clip_grad_norm>},
                                         {"trainer", safe<l_trainer>},
                                         {"log", safe<l_log>},
                                         {"threads", safe<l_threads>},
                                         {"set_threads", safe<l_set_threads>},
                                         {"plugins", safe<l_plugins>},
                                         {"clock", safe<l_clock>},
                                         {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
