// cdrmix.Data and cdrmix.Tokenizer: data source plugins and their tokenizers in Lua.
//   local data = cdrmix.data{type = "text", path = "corpus.txt", tokenizer = "char"}
//   local batch = data:batch("train", 16, 128)     -- int64 [16, 129]
//   local batch, mask = data:batch("train", 16, 128) -- mask: float [16, 128] from a chat source, else nil
#include "lua/wrap_data.hpp"

#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "lua/wrap_tensor.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/loss_mask.hpp>
#include <cdrmix/registry.hpp>

#include <torch/torch.h>

namespace cdrmix::lua {

std::shared_ptr<DataSource> &check_data(lua_State *L, int idx) {
    return check<std::shared_ptr<DataSource>>(L, idx, kData);
}

std::shared_ptr<Tokenizer> check_tokenizer(lua_State *L, int idx) {
    if (auto *d = test<std::shared_ptr<DataSource>>(L, idx, kData)) return (*d)->tokenizer();
    return check<std::shared_ptr<Tokenizer>>(L, idx, kTokenizer);
}

namespace {

Split check_split(lua_State *L, int idx) {
    const std::string s = luaL_optstring(L, idx, "train");
    if (s == "train") return Split::Train;
    if (s == "val") return Split::Val;
    throw Error("unknown split '" + s + "' (train or val)");
}

// In a multi-process run each rank reads its own share: rank and world_size
// come from the launcher unless the table sets them. A source that cannot
// shard would feed every rank the same data, so it is refused.
Config shard_for_ranks(const Config &cfg, const DistEnv &env) {
    if (env.world_size == 1) return cfg;
    const std::string type = cfg.get_string("type", "");
    const FactoryInfo info = Registry::global().info(PluginKind::DataSource, type, cfg.where());
    if (!info.schema || !info.schema->find("rank") || !info.schema->find("world_size"))
        throw Error(cfg.where() + ": data source '" + type + "' has no 'rank' and 'world_size' keys, so every one of " +
                    std::to_string(env.world_size) + " ranks would read the same data; it cannot feed a multi-process run");
    Json v = cfg.value();
    if (!v.contains("rank")) v["rank"] = env.rank;
    if (!v.contains("world_size")) v["world_size"] = env.world_size;
    return cfg.with_value(std::move(v), cfg.owner());
}

int l_data(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Runtime &rt = Runtime::from(L);
    const Config cfg = shard_for_ranks(rt.config_of(L, 1, "data"), rt.dist_env());
    auto data = Registry::global().create_data_source(cfg);
    rt.remember_data_config(data.get(), cfg);
    rt.resolved()["data"] = cfg.value();
    rt.write_resolved_config();
    push<std::shared_ptr<DataSource>>(L, data, kData);
    return 1;
}

// data:batch(split, B, T) -> batch [, mask]: the mask (cdrmix/loss_mask.hpp)
// is the second value, nil for a source without one, so
// model:loss(data:batch(...)) trains on what the stock trainer would.
int l_batch(lua_State *L) {
    auto &d = check_data(L, 1);
    const Split split = check_split(L, 2);
    push_tensor(L, d->next_batch(split, luaL_checkinteger(L, 3), luaL_checkinteger(L, 4)));
    const at::Tensor mask = last_loss_mask(*d);
    if (mask.defined())
        push_tensor(L, mask);
    else
        lua_pushnil(L);
    return 2;
}

int l_vocab_size(lua_State *L) {
    lua_pushinteger(L, static_cast<lua_Integer>(check_tokenizer(L, 1)->vocab_size()));
    return 1;
}

int l_num_tokens(lua_State *L) {
    lua_pushnumber(L, static_cast<lua_Number>(check_data(L, 1)->num_tokens(check_split(L, 2))));
    return 1;
}

int l_get_tokenizer(lua_State *L) {
    push<std::shared_ptr<Tokenizer>>(L, check_data(L, 1)->tokenizer(), kTokenizer);
    return 1;
}

int l_encode(lua_State *L) {
    auto ids = check_tokenizer(L, 1)->encode(luaL_checkstring(L, 2));
    push_tensor(L, torch::tensor(ids, torch::kInt64));
    return 1;
}

int l_decode(lua_State *L) {
    auto tok = check_tokenizer(L, 1);
    std::vector<int64_t> ids;
    if (auto *t = test<at::Tensor>(L, 2, kTensor)) {
        at::Tensor flat = t->reshape({-1}).to(torch::kInt64).contiguous();
        ids.assign(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        for (size_t i = 1; i <= lua_objlen(L, 2); ++i) {
            lua_rawgeti(L, 2, static_cast<int>(i));
            ids.push_back(static_cast<int64_t>(luaL_checknumber(L, -1)));
            lua_pop(L, 1);
        }
    }
    std::string s = tok->decode(ids);
    lua_pushlstring(L, s.data(), s.size());
    return 1;
}

int l_data_tostring(lua_State *L) {
    lua_pushstring(L, ("cdrmix.Data(" + check_data(L, 1)->describe() + ")").c_str());
    return 1;
}

int l_tokenizer_tostring(lua_State *L) {
    auto tok = check_tokenizer(L, 1);
    lua_pushstring(L, ("cdrmix.Tokenizer(" + tok->kind() + ", " + std::to_string(tok->vocab_size()) + " tokens)").c_str());
    return 1;
}

} // namespace

void open_data(lua_State *L) {
    static const luaL_Reg data_methods[] = {{"batch", safe<l_batch>},
                                            {"vocab_size", safe<l_vocab_size>},
                                            {"num_tokens", safe<l_num_tokens>},
                                            {"tokenizer", safe<l_get_tokenizer>},
                                            {"encode", safe<l_encode>},
                                            {"decode", safe<l_decode>},
                                            {nullptr, nullptr}};
    static const luaL_Reg data_meta[] = {{"__tostring", safe<l_data_tostring>}, {nullptr, nullptr}};
    define_class<std::shared_ptr<DataSource>>(L, kData, data_methods, data_meta);
    static const luaL_Reg tok_methods[] = {{"vocab_size", safe<l_vocab_size>},
                                           {"encode", safe<l_encode>},
                                           {"decode", safe<l_decode>},
                                           {nullptr, nullptr}};
    static const luaL_Reg tok_meta[] = {{"__tostring", safe<l_tokenizer_tostring>}, {nullptr, nullptr}};
    define_class<std::shared_ptr<Tokenizer>>(L, kTokenizer, tok_methods, tok_meta);

    static const luaL_Reg functions[] = {{"data", safe<l_data>}, {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
