#include "lua/config_sources.hpp"

#include "lua/lua_util.hpp"

namespace cdrmix::lua {

ConfigSources::Origin &ConfigSources::origin(lua_State *L, int idx) {
    const void *key = lua_topointer(L, idx);
    auto it = tables_.find(key);
    if (it == tables_.end()) {
        // Pinned in the registry: a collected table's address could be reused by another.
        lua_pushvalue(L, idx);
        luaL_ref(L, LUA_REGISTRYINDEX);
        it = tables_.emplace(key, Origin{}).first;
    }
    return it->second;
}

void ConfigSources::mark_table(lua_State *L, int idx, const std::string &source) {
    origin(L, idx).source = source;
}

void ConfigSources::mark_key(lua_State *L, int idx, const std::string &key, std::shared_ptr<bool> read) {
    origin(L, idx).keys[key] = std::move(read);
}

void ConfigSources::collect(lua_State *L, int idx, const std::string &path, ValueSources &out, int depth) const {
    if (depth > 64) return; // config tables are shallow; a cycle would be rejected by to_json anyway
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    auto it = tables_.find(lua_topointer(L, idx));
    if (it != tables_.end()) {
        if (!it->second.source.empty()) out.by_path[path] = it->second.source;
        for (const auto &[key, read] : it->second.keys) {
            out.by_path[path + "/" + pointer_key(key)] = kCommandLine;
            if (read) out.read_flags[path + "/" + pointer_key(key)] = read;
        }
    }
    size_t n = 0;
    const bool array = is_array(L, idx, n) && n > 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_istable(L, -1)) {
            std::string key;
            if (array && lua_type(L, -2) == LUA_TNUMBER) key = std::to_string(lua_tointeger(L, -2) - 1);
            else if (lua_type(L, -2) == LUA_TSTRING) key = pointer_key(lua_tostring(L, -2));
            if (!key.empty()) collect(L, -1, path + "/" + key, out, depth + 1);
        }
        lua_pop(L, 1);
    }
}

Config ConfigSources::config(lua_State *L, int idx, const std::string &owner, const std::string &script) const {
    auto sources = std::make_shared<ValueSources>();
    collect(L, idx, "", *sources, 0);
    return Config(to_json(L, idx), owner, script, std::move(sources));
}

} // namespace cdrmix::lua
