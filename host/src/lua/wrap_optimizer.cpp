// Pieces of a hand-written training loop (experiments/hand_loop.lua):
//   local opt = cdrmix.adamw(model, {lr = 3e-3, weight_decay = 0.1})
//   local opt = cdrmix.adamw({model = model, probe = {w = cdrmix.parameter({8, 64})}}, {lr = 3e-3})
//   local sched = cdrmix.schedule{lr = 3e-3, steps = 100, warmup_steps = 10}
//   opt:set_lr(sched:at(step)); opt:zero_grad(); loss:backward()
//   cdrmix.clip_grad_norm(model, 1.0); opt:step()
// The keys and defaults of cdrmix.adamw{} and cdrmix.schedule{} are the stock
// trainer's own (adamw_schema, schedule_schema): `cdrmix keys adamw|schedule`.
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "lua/wrap_model.hpp"
#include "lua/wrap_tensor.hpp"
#include "train/schedule.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>

#include <torch/optim/adamw.h>

#include <algorithm>
#include <set>

namespace cdrmix::lua {

namespace {

constexpr const char *kOptimizer = "cdrmix.Optimizer";
constexpr const char *kSchedule = "cdrmix.Schedule";

struct OptimizerBox {
    std::shared_ptr<torch::optim::AdamW> optimizer;
    bool stepped = false;
};

// The table at idx (or an empty one) resolved by schema, for owner.
Config resolved_table(lua_State *L, int idx, const Schema &schema, const std::string &owner) {
    Runtime &rt = Runtime::from(L);
    if (lua_isnoneornil(L, idx)) return schema.apply(Config(Json::object(), owner, rt.script_origin()));
    luaL_checktype(L, idx, LUA_TTABLE);
    return schema.apply(rt.config_of(L, idx, owner));
}

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The parameters in the table at idx, by key path in sorted key order: a
// model's (its names under the key), tensors that require gradients, and
// nested tables. A tensor reachable twice is taken once.
void collect_parameters(lua_State *L, int idx, const std::string &path, NamedTensors &out,
                        std::set<const void *> &seen, int depth) {
    if (depth > 16) throw Error("cdrmix.adamw: the parameter table nests more than 16 tables deep");
    std::vector<std::string> keys;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING || lua_type(L, -2) == LUA_TNUMBER) {
            lua_pushvalue(L, -2);
            keys.emplace_back(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    std::sort(keys.begin(), keys.end());
    for (const auto &key : keys) {
        const std::string name = path.empty() ? key : path + "." + key;
        lua_pushstring(L, key.c_str());
        lua_gettable(L, idx);
        if (lua_isnil(L, -1)) { // a numeric key, read back as a number
            lua_pop(L, 1);
            lua_pushnumber(L, std::stod(key));
            lua_gettable(L, idx);
        }
        if (auto *model = test<std::shared_ptr<Model>>(L, -1, kModel)) {
            for (const auto &p : (*model)->named_parameters())
                if (seen.insert(p.value().unsafeGetTensorImpl()).second) out.emplace_back(name + "." + p.key(), p.value());
        } else if (auto *t = test<torch::Tensor>(L, -1, kTensor)) {
            if (t->requires_grad() && seen.insert(t->unsafeGetTensorImpl()).second) {
                if (t->grad_fn())
                    throw Error("cdrmix.adamw: '" + name + "' is computed from other tensors, not a parameter; make "
                                "parameters with cdrmix.parameter");
                out.emplace_back(name, *t);
            }
        } else if (lua_istable(L, -1)) {
            collect_parameters(L, lua_gettop(L), name, out, seen, depth + 1);
        }
        lua_pop(L, 1);
    }
}

// cdrmix.adamw(model_or_table [, options]): over a model's parameters, or over
// everything a table holds (models, cdrmix.parameter tensors, nested tables).
int l_adamw(lua_State *L) {
    const Config c = resolved_table(L, 2, adamw_schema(), "cdrmix.adamw");
    const double lr = c.get_double("lr"), wd = c.get_double("weight_decay"), b1 = c.get_double("beta1"),
                 b2 = c.get_double("beta2"), eps = c.get_double("eps");
    std::unique_ptr<torch::optim::AdamW> opt;
    if (lua_istable(L, 1)) {
        NamedTensors named;
        std::set<const void *> seen;
        collect_parameters(L, 1, "", named, seen, 0);
        if (named.empty()) throw Error("cdrmix.adamw: the table holds no model and no tensor that requires gradients");
        opt = make_adamw(named, lr, wd, b1, b2, eps);
    } else {
        opt = make_adamw(*check_model(L, 1), lr, wd, b1, b2, eps);
    }
    push<OptimizerBox>(L, OptimizerBox{std::shared_ptr<torch::optim::AdamW>(std::move(opt))}, kOptimizer);
    return 1;
}

int l_opt_step(lua_State *L) {
    auto &box = check<OptimizerBox>(L, 1, kOptimizer);
    // The loop's first update: every command-line override must have reached a consumer by now.
    if (!box.stepped) Runtime::from(L).check_overrides();
    box.stepped = true;
    box.optimizer->step();
    return 0;
}

int l_opt_zero_grad(lua_State *L) {
    check<OptimizerBox>(L, 1, kOptimizer).optimizer->zero_grad();
    return 0;
}

int l_opt_set_lr(lua_State *L) {
    auto &opt = check<OptimizerBox>(L, 1, kOptimizer).optimizer;
    const double lr = luaL_checknumber(L, 2);
    for (auto &g : opt->param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
    return 0;
}

int l_opt_lr(lua_State *L) {
    auto &opt = check<OptimizerBox>(L, 1, kOptimizer).optimizer;
    lua_pushnumber(L, static_cast<torch::optim::AdamWOptions &>(opt->param_groups().front().options()).lr());
    return 1;
}

// cdrmix.clip_grad_norm(model, max_norm): returns the norm before clipping; max_norm 0 only measures it.
int l_clip_grad_norm(lua_State *L) {
    Model &model = *check_model(L, 1);
    if (model.expert_group())
        throw Error("cdrmix.clip_grad_norm: this model's experts are split over ranks, so this rank sees part of the "
                    "gradient; use dp:clip_grad_norm(max_norm) of cdrmix.dist.data_parallel(model)");
    lua_pushnumber(L, clip_gradients(model, luaL_optnumber(L, 2, 0.0)));
    return 1;
}

int l_schedule(lua_State *L) {
    push<LrSchedule>(L, LrSchedule::from_config(resolved_table(L, 1, schedule_schema(), "cdrmix.schedule")),
                     kSchedule);
    return 1;
}

// schedule:at(step): the learning rate of the step-th update, counting from 1 like a Lua loop.
int l_schedule_at(lua_State *L) {
    const auto &s = check<LrSchedule>(L, 1, kSchedule);
    lua_pushnumber(L, s.at(static_cast<int64_t>(luaL_checknumber(L, 2)) - 1));
    return 1;
}

} // namespace

void open_optimizer(lua_State *L) {
    static const luaL_Reg opt_methods[] = {{"step", safe<l_opt_step>},
                                           {"zero_grad", safe<l_opt_zero_grad>},
                                           {"set_lr", safe<l_opt_set_lr>},
                                           {"lr", safe<l_opt_lr>},
                                           {nullptr, nullptr}};
    define_class<OptimizerBox>(L, kOptimizer, opt_methods);
    static const luaL_Reg schedule_methods[] = {{"at", safe<l_schedule_at>}, {nullptr, nullptr}};
    define_class<LrSchedule>(L, kSchedule, schedule_methods);
    static const luaL_Reg functions[] = {{"adamw", safe<l_adamw>},
                                         {"schedule", safe<l_schedule>},
                                         {"clip_grad_norm", safe<l_clip_grad_norm>},
                                         {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
