// The stock trainer in Lua:
//   cdrmix.trainer{model = m, data = d, steps = 600, name = "x", resume = "auto", ...}
//     :run{on_step = f, on_eval = g, on_checkpoint = h, on_sample = s}
//   trainer:swap_router("all", {type = "sinkhorn"})   -- between steps, e.g. from on_step
// Keys: `cdrmix keys trainer`. Each run name (a trainer's `name`, else the
// script's file name) is one Run with its own folder runs/<name>-<stamp>/, so
// several trainers in one script keep their records and checkpoints apart;
// trainers of the same name share it. Resuming: `resume = "auto" | PATH` or
// `cdrmix run --resume`; a PATH from the command line goes to the script's
// first trainer:run().
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "lua/wrap_data.hpp"
#include "lua/wrap_model.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <cstdio>

namespace cdrmix::lua {

namespace {

constexpr const char *kTrainer = "cdrmix.Trainer";

struct TrainerBox {
    std::shared_ptr<Trainer> trainer;
    Run *run = nullptr;  // owned by the Runtime, which outlives every Lua value
    std::string resume;  // "", "auto" or a path, from the trainer table
};

// The trainer table without its model and data, as a Config with its values' sources.
Config settings_of(lua_State *L, int idx) {
    Runtime &rt = Runtime::from(L);
    lua_getfield(L, idx, "model");
    lua_getfield(L, idx, "data");
    lua_pushnil(L);
    lua_setfield(L, idx, "model");
    lua_pushnil(L);
    lua_setfield(L, idx, "data");
    Config c = rt.config_of(L, idx, "trainer");
    lua_setfield(L, idx, "data");
    lua_setfield(L, idx, "model");
    return c;
}

int l_trainer(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Runtime &rt = Runtime::from(L);
    lua_getfield(L, 1, "model");
    auto model = check_model(L, -1);
    lua_getfield(L, 1, "data");
    auto data = check_data(L, -1);
    lua_pop(L, 2);
    const TrainConfig tc = TrainConfig::from_config(settings_of(L, 1), model->device().type());
    Run &run = rt.run(opt_string_field(L, 1, "name", rt.script_name()));
    run.set_own("train", tc.to_json());
    push<TrainerBox>(L, TrainerBox{run.make_trainer(model, data, tc, &rt.control()), &run,
                                   opt_string_field(L, 1, "resume", "")},
                     kTrainer);
    rt.set_training_target({model, data->tokenizer(), rt.data_config(data.get()), tc.batch_size, tc.seq_len});
    return 1;
}

// The checkpoint the run continues from ("" for a fresh start).
std::string resume_source(Runtime &rt, const TrainerBox &box) {
    const std::string spec = box.resume.empty() ? rt.take_resume_option() : box.resume;
    const std::string found = box.run->find_resume(spec);
    if (spec == "auto" && found.empty() && box.run->writes())
        std::fprintf(stderr, "cdrmix: no earlier checkpoint of '%s' under %s; starting from step 0\n",
                     box.run->name().c_str(), rt.options().runs_root.c_str());
    return found;
}

int l_trainer_run(lua_State *L) {
    auto &box = check<TrainerBox>(L, 1, kTrainer);
    Runtime &rt = Runtime::from(L);
    rt.check_overrides();
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
    Run &run = *box.run;
    const std::string from = resume_source(rt, box);
    run.open();
    rt.set_log_every(box.trainer->config().log_every);
    Json end;
    try {
        if (!from.empty()) {
            box.trainer->resume(from);
            run.set_own("resumed_from", from);
            if (Json swap = rt.take_branch_swap(); !swap.is_null()) {
                box.trainer->swap_router(swap, Registry::global());
                run.set_own("branch", {{"of", from}, {"step", box.trainer->step()}, {"swap", std::move(swap)}});
            }
        }
        box.trainer->set_checkpoint_root(run.checkpoint_root());
        box.trainer->set_run_config(run.config());
        end = box.trainer->run(cb);
    } catch (...) {
        run.abandon_if_empty(); // a run that failed before its first step leaves no folder
        throw;
    }
    end["run_dir"] = run.path();
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
    box.run->open();
    box.trainer->set_checkpoint_root(box.run->checkpoint_root());
    box.trainer->set_run_config(box.run->config());
    lua_pushstring(L, box.trainer->checkpoint().c_str());
    return 1;
}

// trainer:swap_router(layer, router): `layer` a layer id (0-based, as the
// records number layers) or "all"; `router` a router table. Between steps:
// from a run's callbacks, or before or after a run. Returns the swap record.
int l_trainer_swap_router(lua_State *L) {
    auto &box = check<TrainerBox>(L, 1, kTrainer);
    int64_t layer = -1;
    if (lua_type(L, 2) == LUA_TSTRING) {
        if (std::string(lua_tostring(L, 2)) != "all")
            throw Error("swap_router: layer is a layer id (0-based, as in the records) or \"all\", not '" +
                        std::string(lua_tostring(L, 2)) + "'");
    } else {
        layer = luaL_checkinteger(L, 2);
        if (layer < 0) throw Error("swap_router: layer ids start at 0 (as in the records)");
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    const Json router = Runtime::from(L).config_of(L, 3, "router").value();
    push_json(L, box.trainer->swap_router(layer, router, Registry::global()));
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

int l_trainer_tostring(lua_State *L) {
    auto &box = check<TrainerBox>(L, 1, kTrainer);
    lua_pushstring(L, ("cdrmix.Trainer(" + box.run->name() + ", " + std::to_string(box.trainer->config().steps) +
                       " steps)")
                          .c_str());
    return 1;
}

} // namespace

void open_trainer(lua_State *L) {
    static const luaL_Reg trainer_methods[] = {{"run", safe<l_trainer_run>},
                                               {"evaluate", safe<l_trainer_evaluate>},
                                               {"checkpoint", safe<l_trainer_checkpoint>},
                                               {"step", safe<l_trainer_step>},
                                               {"swap_router", safe<l_trainer_swap_router>},
                                               {nullptr, nullptr}};
    static const luaL_Reg trainer_meta[] = {{"__tostring", safe<l_trainer_tostring>}, {nullptr, nullptr}};
    define_class<TrainerBox>(L, kTrainer, trainer_methods, trainer_meta);
    static const luaL_Reg functions[] = {{"trainer", safe<l_trainer>}, {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
