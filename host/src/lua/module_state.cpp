#include "lua/module_state.hpp"

#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "lua/text_only.hpp"
#include "lua/wrap_tensor.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/router.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>

namespace fs = std::filesystem;

namespace cdrmix::lua {

namespace {

// Parameters are bounded like any other allocation a script asks for: 2^31 elements (8 GiB of float32).
constexpr int64_t kMaxParameterElements = int64_t(1) << 31;

std::vector<int64_t> parameter_shape(lua_State *L, int idx) {
    luaL_checktype(L, idx, LUA_TTABLE);
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (size_t i = 1; i <= lua_objlen(L, idx); ++i) {
        lua_rawgeti(L, idx, static_cast<int>(i));
        const double v = lua_tonumber(L, -1);
        const bool number = lua_type(L, -1) == LUA_TNUMBER;
        lua_pop(L, 1);
        if (!number || v != std::floor(v) || v < 1 || v > double(kMaxParameterElements))
            throw Error("cdrmix.parameter: shape entry " + std::to_string(i) + " must be a whole number >= 1");
        const auto n = static_cast<int64_t>(v);
        if (numel > kMaxParameterElements / n)
            throw Error("cdrmix.parameter: more than 2^31 elements in one parameter");
        numel *= n;
        shape.push_back(n);
    }
    if (shape.empty()) throw Error("cdrmix.parameter: the shape is a list of sizes, e.g. {4, 64}");
    return shape;
}

// The init argument: nil (normal, std 0.02), a number (that constant),
// "zeros" / "ones", {normal = std [, mean = m]}, {uniform = a} (U(-a, a)), or a tensor to copy.
torch::Tensor initial_values(lua_State *L, int idx, const std::vector<int64_t> &shape) {
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL: return torch::randn(shape, f32) * 0.02;
    case LUA_TNUMBER: return torch::full(shape, lua_tonumber(L, idx), f32);
    case LUA_TSTRING: {
        const std::string s = lua_tostring(L, idx);
        if (s == "zeros") return torch::zeros(shape, f32);
        if (s == "ones") return torch::ones(shape, f32);
        throw Error("cdrmix.parameter: unknown init '" + s + "' (zeros, ones, {normal = std}, {uniform = a}, a number or a tensor)");
    }
    case LUA_TTABLE: {
        lua_getfield(L, idx, "normal");
        lua_getfield(L, idx, "uniform");
        const bool normal = lua_isnumber(L, -2), uniform = lua_isnumber(L, -1);
        const double std_or_bound = normal ? lua_tonumber(L, -2) : lua_tonumber(L, -1);
        lua_pop(L, 2);
        if (normal == uniform) throw Error("cdrmix.parameter: an init table has one of 'normal' (std) or 'uniform' (bound)");
        if (normal) return torch::randn(shape, f32) * std_or_bound + opt_number_field(L, idx, "mean", 0.0);
        return (torch::rand(shape, f32) * 2 - 1) * std_or_bound;
    }
    case LUA_TUSERDATA: {
        const torch::Tensor &t = check_tensor(L, idx);
        if (t.sizes() != at::IntArrayRef(shape))
            throw Error("cdrmix.parameter: the init tensor's shape " + c10::str(t.sizes()) + " is not the shape " +
                        c10::str(at::IntArrayRef(shape)));
        return t.detach().to(torch::kFloat32).clone();
    }
    default: throw Error(std::string("cdrmix.parameter: init is a ") + luaL_typename(L, idx));
    }
}

// cdrmix.parameter(shape [, init]): a float32 tensor that requires gradients,
// with no history: what a module owns and an optimiser updates.
int l_parameter(lua_State *L) {
    const auto shape = parameter_shape(L, 1);
    torch::Tensor t;
    {
        torch::NoGradGuard no_grad;
        t = initial_values(L, 2, shape);
    }
    push_tensor(L, t.set_requires_grad(true));
    return 1;
}

// cdrmix.load_balance_loss(probs, indices, num_experts, alpha): the SDK's Switch/GShard loss.
int l_load_balance_loss(lua_State *L) {
    push_tensor(L, load_balance_loss(check_tensor(L, 1), check_tensor(L, 2), luaL_checkinteger(L, 3),
                                     luaL_checknumber(L, 4)));
    return 1;
}

// cdrmix.router_z_loss(logits, coef): the SDK's ST-MoE z-loss.
int l_router_z_loss(lua_State *L) {
    push_tensor(L, router_z_loss(check_tensor(L, 1), luaL_checknumber(L, 2)));
    return 1;
}

std::string first_line(const std::string &s) { return s.substr(0, s.find('\n')); }

} // namespace

void open_module_functions(lua_State *L) {
    static const luaL_Reg functions[] = {{"parameter", safe<l_parameter>},
                                         {"load_balance_loss", safe<l_load_balance_loss>},
                                         {"router_z_loss", safe<l_router_z_loss>},
                                         {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

std::string resolve_module_file(const Config &config) {
    const std::string name = config.get_string("file");
    std::error_code ec;
    const fs::path path(name);
    std::vector<fs::path> tried;
    if (path.is_absolute()) {
        tried.push_back(path);
    } else {
        if (!config.source().empty()) tried.push_back(fs::path(config.source()).parent_path() / path);
        tried.push_back(fs::current_path(ec) / path);
    }
    for (const auto &p : tried)
        if (fs::is_regular_file(p, ec)) return p.lexically_normal().string();
    std::string where;
    for (const auto &p : tried) where += (where.empty() ? "" : ", ") + p.lexically_normal().string();
    throw Error(config.where("file") + ": no Lua module file '" + name + "' (looked at " + where + ")");
}

ModuleState::ModuleState(const Config &config, const Json &ctx, const std::string &kind)
    : file_(resolve_module_file(config)), kind_(kind) {
    L_ = luaL_newstate();
    if (!L_) throw Error("cannot create a Lua state (out of memory)");
    try {
        luaL_openlibs(L_);
        text_chunks_only(L_);
        lua_newtable(L_);
        open_tensor(L_);
        open_module_functions(L_);
        lua_getglobal(L_, "package");
        lua_getfield(L_, -1, "loaded");
        lua_pushvalue(L_, -3);
        lua_setfield(L_, -2, "cdrmix");
        lua_pop(L_, 1);
        // require("x") finds x.lua beside the module file first.
        const std::string dir = fs::path(file_).parent_path().string();
        lua_getfield(L_, -1, "path");
        const std::string path = dir + "/?.lua;" + (lua_isstring(L_, -1) ? lua_tostring(L_, -1) : "");
        lua_pop(L_, 1);
        lua_pushstring(L_, path.c_str());
        lua_setfield(L_, -2, "path");
        lua_pop(L_, 1);
        lua_setglobal(L_, "cdrmix");

        const std::string where = config.where("file") + ": " + kind_ + " module '" + file_ + "'";
        if (luaL_loadfilex(L_, file_.c_str(), "t") != 0) throw Error(where + ": " + first_line(lua_tostring(L_, -1)));
        call(0, 1);
        if (!lua_isfunction(L_, -1))
            throw Error(where + " returns a " + luaL_typename(L_, -1) +
                        "; it must return its constructor, function(ctx, options) ... return module end");
        push_json(L_, ctx);
        push_json(L_, config.has("options") ? config.raw("options") : Json::object());
        call(2, 1);
        if (!lua_istable(L_, -1))
            throw Error(where + ": the constructor returned a " + luaL_typename(L_, -1) + ", not the module's table");
        module_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
        lua_settop(L_, 0);
    } catch (...) {
        lua_close(L_);
        throw;
    }
}

ModuleState::~ModuleState() {
    if (L_) lua_close(L_);
}

void ModuleState::call(int nargs, int nresults) {
    const int base = lua_gettop(L_) - nargs;
    lua_pushcfunction(L_, traceback_handler);
    lua_insert(L_, base);
    const int status = lua_pcall(L_, nargs, nresults, base);
    lua_remove(L_, base);
    if (status != 0) {
        const std::string msg = lua_isstring(L_, -1) ? lua_tostring(L_, -1) : "(error object is not a string)";
        lua_pop(L_, 1);
        throw Error(kind_ + " module '" + file_ + "': " + first_line(msg));
    }
}

void ModuleState::finish_call() {
    lua_settop(L_, 0);
    lua_gc(L_, LUA_GCCOLLECT, 0);
}

bool ModuleState::has_method(const char *name) const {
    lua_rawgeti(L_, LUA_REGISTRYINDEX, module_ref_);
    lua_getfield(L_, -1, name);
    const bool found = lua_isfunction(L_, -1);
    lua_pop(L_, 2);
    return found;
}

void ModuleState::push_method(const char *name) {
    lua_rawgeti(L_, LUA_REGISTRYINDEX, module_ref_);
    lua_getfield(L_, -1, name);
    lua_remove(L_, -2);
    if (!lua_isfunction(L_, -1)) {
        lua_pop(L_, 1);
        throw Error(kind_ + " module '" + file_ + "': the module's table has no function '" + name + "'");
    }
}

namespace {

// Registers the tensors of the table at idx on owner, key by key in sorted
// order (so every instance names and orders them alike); nested tables become
// submodules. A tensor reachable twice is registered under its first name.
void register_table(lua_State *L, int idx, torch::nn::Module &owner, const std::string &path,
                    std::set<const void *> &seen_tables, std::set<const void *> &seen_tensors, int depth) {
    if (depth > 16) throw Error("module table '" + path + "' nests more than 16 tables deep");
    std::vector<std::pair<std::string, bool>> keys; // (name, is an integer key)
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const bool wanted = test<at::Tensor>(L, -1, kTensor) || lua_type(L, -1) == LUA_TTABLE;
        if (wanted && lua_type(L, -2) == LUA_TSTRING) keys.emplace_back(lua_tostring(L, -2), false);
        else if (wanted && lua_type(L, -2) == LUA_TNUMBER)
            keys.emplace_back(std::to_string(static_cast<long long>(lua_tonumber(L, -2))), true);
        lua_pop(L, 1);
    }
    std::sort(keys.begin(), keys.end(), [](const auto &a, const auto &b) {
        if (a.second != b.second) return a.second; // integer keys first, in numeric order
        return a.second ? std::stoll(a.first) < std::stoll(b.first) : a.first < b.first;
    });
    for (const auto &[key, integer] : keys) {
        const std::string name = path.empty() ? key : path + "." + key;
        if (key.empty() || key.find('.') != std::string::npos)
            throw Error("module table key '" + name + "' cannot name a parameter (empty, or it has a '.')");
        if (integer) lua_rawgeti(L, idx, std::stoi(key));
        else lua_getfield(L, idx, key.c_str());
        if (const at::Tensor *t = test<at::Tensor>(L, -1, kTensor)) {
            if (seen_tensors.insert(t->unsafeGetTensorImpl()).second) {
                if (t->requires_grad() && t->grad_fn())
                    throw Error("module tensor '" + name +
                                "' requires gradients but is computed from other tensors; make parameters with "
                                "cdrmix.parameter and compute from them inside the module's methods");
                if (t->requires_grad()) owner.register_parameter(key, *t);
                else owner.register_buffer(key, *t);
            }
        } else if (seen_tables.insert(lua_topointer(L, -1)).second) {
            auto child = std::make_shared<torch::nn::Module>();
            register_table(L, lua_gettop(L), *child, name, seen_tables, seen_tensors, depth + 1);
            if (!child->parameters().empty() || !child->buffers().empty()) owner.register_module(key, child);
        }
        lua_pop(L, 1);
    }
}

} // namespace

void ModuleState::register_tensors(torch::nn::Module &owner) {
    lua_rawgeti(L_, LUA_REGISTRYINDEX, module_ref_);
    std::set<const void *> tables{lua_topointer(L_, -1)}, tensors;
    try {
        register_table(L_, lua_gettop(L_), owner, "", tables, tensors, 0);
    } catch (const Error &e) {
        lua_settop(L_, 0);
        throw Error(kind_ + " module '" + file_ + "': " + e.what());
    }
    lua_settop(L_, 0);
}

} // namespace cdrmix::lua
