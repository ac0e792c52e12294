#include "lua/lua_modules.hpp"

#include "lua/lua_util.hpp"
#include "lua/module_state.hpp"
#include "lua/wrap_tensor.hpp"

#include <cdrmix/block.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/router.hpp>
#include <cdrmix/schema.hpp>

#include <torch/torch.h>

namespace cdrmix::lua {

namespace {

Schema module_schema(const std::string &what) {
    Schema s(what);
    s.string("file", nullptr, "the Lua module file: absolute, or relative to the script or YAML that names it, "
                              "then to the working directory")
        .required();
    s.table("options", "passed to the module's constructor as its second argument");
    return s;
}

// The tensor at the top of the stack (or undefined for nil); `what` names it in errors.
torch::Tensor tensor_result(lua_State *L, const std::string &what, bool optional = false) {
    if (optional && lua_isnil(L, -1)) return {};
    const at::Tensor *t = test<at::Tensor>(L, -1, kTensor);
    if (!t) throw Error(what + " is a " + luaL_typename(L, -1) + ", not a tensor");
    return *t;
}

// {name = tensor} at the top of the stack (nil: none), each a scalar.
std::vector<NamedLoss> losses_result(lua_State *L, const std::string &what) {
    std::vector<NamedLoss> out;
    if (lua_isnil(L, -1)) return out;
    if (!lua_istable(L, -1)) throw Error(what + " is a " + luaL_typename(L, -1) + ", not a table of named losses");
    const int idx = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) throw Error(what + ": loss names are strings");
        const std::string name = lua_tostring(L, -2);
        torch::Tensor v = tensor_result(L, what + "." + name);
        if (v.numel() != 1) throw Error(what + "." + name + " has " + std::to_string(v.numel()) + " elements; a loss is a scalar");
        out.push_back({name, v.reshape({})});
        lua_pop(L, 1);
    }
    std::sort(out.begin(), out.end(), [](const NamedLoss &a, const NamedLoss &b) { return a.name < b.name; });
    return out;
}

std::string shape_text(at::IntArrayRef s) { return c10::str(s); }

class LuaRouter : public Router {
public:
    LuaRouter(const Config &cfg, const RouterContext &ctx)
        : module_(cfg,
                  Json{{"hidden_size", ctx.hidden_size}, {"num_experts", ctx.num_experts}, {"top_k", ctx.top_k},
                       {"layer", ctx.layer}},
                  "router"),
          E_(ctx.num_experts), k_(ctx.top_k) {
        module_.register_tensors(*this);
        module_.push_method("route"); // refused at construction, not at the first step
        module_.finish_call();
    }

    RouterOutput route(const torch::Tensor &x, const RouteInput &in) override {
        lua_State *L = module_.state();
        module_.push_method("route");
        push_tensor(L, x);
        lua_createtable(L, 0, 4);
        lua_pushboolean(L, is_training());
        lua_setfield(L, -2, "training");
        lua_pushboolean(L, in.decoding);
        lua_setfield(L, -2, "decoding");
        if (in.token_ids.defined()) {
            push_tensor(L, in.token_ids);
            lua_setfield(L, -2, "token_ids");
        }
        module_.call(2, 1);
        RouterOutput out;
        try {
            out = read_output(L, x.size(0));
        } catch (const Error &e) {
            module_.finish_call();
            throw Error("router module '" + module_.file() + "': " + e.what());
        }
        module_.finish_call();
        return out;
    }

    int64_t num_experts() const override { return E_; }
    int64_t top_k() const override { return k_; }

private:
    RouterOutput read_output(lua_State *L, int64_t n) {
        if (!lua_istable(L, -1)) throw Error(std::string("route returned a ") + luaL_typename(L, -1) + ", not a table");
        const int t = lua_gettop(L);
        RouterOutput out;
        lua_getfield(L, t, "indices");
        out.indices = tensor_result(L, "route's indices");
        lua_getfield(L, t, "weights");
        out.weights = tensor_result(L, "route's weights");
        lua_getfield(L, t, "probs");
        out.probs = tensor_result(L, "route's probs");
        lua_getfield(L, t, "losses");
        out.losses = losses_result(L, "route's losses");
        const std::vector<int64_t> decision{n, k_}, dist{n, E_};
        if (out.indices.sizes() != at::IntArrayRef(decision))
            throw Error("route's indices have shape " + shape_text(out.indices.sizes()) + "; expected " +
                        shape_text(decision) + " (tokens, top_k)");
        if (out.indices.scalar_type() != torch::kInt64)
            throw Error("route's indices are " + std::string(c10::toString(out.indices.scalar_type())) +
                        "; expected int64 expert ids (topk's indices are)");
        if (out.weights.sizes() != at::IntArrayRef(decision) || !out.weights.is_floating_point())
            throw Error("route's weights are " + shape_text(out.weights.sizes()) + "; expected floating " +
                        shape_text(decision));
        if (out.probs.sizes() != at::IntArrayRef(dist))
            throw Error("route's probs are " + shape_text(out.probs.sizes()) + "; expected " + shape_text(dist) +
                        " (tokens, experts)");
        out.probs = out.probs.detach();
        return out;
    }

    ModuleState module_;
    int64_t E_, k_;
};

class LuaBlock : public Block {
public:
    LuaBlock(const Config &cfg, const BlockContext &ctx)
        : module_(cfg,
                  Json{{"hidden_size", ctx.hidden_size}, {"layer", ctx.layer}, {"num_layers", ctx.num_layers},
                       {"expert", ctx.expert}},
                  "block"),
          layer_(ctx.layer) {
        module_.register_tensors(*this);
        tokenwise_ = module_.has_method("forward_tokens");
        if (ctx.expert && !tokenwise_)
            throw Error(cfg.where("file") + ": block module '" + module_.file() +
                        "' has no forward_tokens(x), so it cannot serve as an MoE expert");
        if (!ctx.expert) module_.push_method("forward");
        module_.finish_call();
    }

    torch::Tensor forward(const torch::Tensor &x, BlockState *state, ForwardContext &ctx) override {
        lua_State *L = module_.state();
        module_.push_method("forward");
        push_tensor(L, x);
        if (state) {
            lua_createtable(L, static_cast<int>(state->size()), 0);
            for (size_t i = 0; i < state->size(); ++i) {
                push_tensor(L, (*state)[i]);
                lua_rawseti(L, -2, static_cast<int>(i + 1));
            }
        } else {
            lua_pushnil(L);
        }
        lua_createtable(L, 0, 5);
        lua_pushboolean(L, is_training());
        lua_setfield(L, -2, "training");
        lua_pushboolean(L, ctx.decoding);
        lua_setfield(L, -2, "decoding");
        lua_pushinteger(L, static_cast<lua_Integer>(layer_));
        lua_setfield(L, -2, "layer");
        if (ctx.token_ids.defined()) {
            push_tensor(L, ctx.token_ids);
            lua_setfield(L, -2, "token_ids");
        }
        lua_newtable(L);
        lua_setfield(L, -2, "losses");
        lua_pushvalue(L, -1);
        const int ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        module_.call(3, 2);
        torch::Tensor y;
        try {
            y = read_output(L, x, state);
            lua_rawgeti(L, LUA_REGISTRYINDEX, ctx_ref);
            lua_getfield(L, -1, "losses");
            for (auto &l : losses_result(L, "forward's ctx.losses"))
                ctx.aux_losses.push_back({"layer" + std::to_string(layer_) + "." + l.name, l.value});
        } catch (const Error &e) {
            luaL_unref(L, LUA_REGISTRYINDEX, ctx_ref);
            module_.finish_call();
            throw Error("block module '" + module_.file() + "': " + e.what());
        }
        luaL_unref(L, LUA_REGISTRYINDEX, ctx_ref);
        module_.finish_call();
        return y;
    }

    bool tokenwise() const override { return tokenwise_; }

    torch::Tensor forward_tokens(const torch::Tensor &x) override {
        lua_State *L = module_.state();
        module_.push_method("forward_tokens");
        push_tensor(L, x);
        module_.call(1, 1);
        torch::Tensor y;
        try {
            y = tensor_result(L, "forward_tokens' result");
            if (y.sizes() != x.sizes())
                throw Error("forward_tokens returned " + shape_text(y.sizes()) + " for input " + shape_text(x.sizes()));
        } catch (const Error &e) {
            module_.finish_call();
            throw Error("block module '" + module_.file() + "': " + e.what());
        }
        module_.finish_call();
        return y;
    }

private:
    // Stack: y, new_state. Writes the new state when the caller carries one.
    torch::Tensor read_output(lua_State *L, const torch::Tensor &x, BlockState *state) {
        lua_pushvalue(L, -2);
        torch::Tensor y = tensor_result(L, "forward's result");
        lua_pop(L, 1);
        if (y.sizes() != x.sizes())
            throw Error("forward returned " + shape_text(y.sizes()) + " for input " + shape_text(x.sizes()));
        if (!state) return y;
        if (!lua_istable(L, -1))
            throw Error(std::string("forward was given a state and returned a ") + luaL_typename(L, -1) +
                        " as the next one; return y, {tensors...}");
        BlockState next;
        const size_t n = lua_objlen(L, -1);
        for (size_t i = 1; i <= n; ++i) {
            lua_rawgeti(L, -1, static_cast<int>(i));
            next.push_back(tensor_result(L, "forward's state[" + std::to_string(i) + "]"));
            lua_pop(L, 1);
        }
        *state = std::move(next);
        return y;
    }

    ModuleState module_;
    int64_t layer_;
    bool tokenwise_ = false;
};

} // namespace

void register_lua_modules(Registry &registry) {
    if (registry.has(PluginKind::Router, "lua")) return;
    const Schema router = module_schema("Router written in Lua: a module file whose route(x, input) picks experts");
    registry.add_router("lua", router.doc(), router, [](const Config &c, const RouterContext &ctx) {
        return std::make_shared<LuaRouter>(c, ctx);
    });
    const Schema block = module_schema("Block written in Lua: a module file whose forward(x, state, ctx) mixes tokens");
    registry.add_block("lua", block.doc(), block, [](const Config &c, const BlockContext &ctx) {
        return std::make_shared<LuaBlock>(c, ctx);
    });
}

} // namespace cdrmix::lua
