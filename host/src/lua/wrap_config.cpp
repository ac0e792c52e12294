// The script's settings in Lua:
//   local cfg = cdrmix.config{ train = {steps = 600}, model = cdrmix.yaml("cdrmix-small") }
// cdrmix.config applies the command line's key.path=value overrides to the
// defaults table and returns it. An override of a key the table has keeps the
// value's type; one that adds a key is tracked until something that checks its
// keys (the model, a trainer, a data source, a router...) reads it, and is an
// error before the first training step if nothing does (Runtime::check_overrides).
// cdrmix.yaml(NAME_OR_PATH) reads a YAML mapping from a file or a preset by name (configs/models/,
// $CDRMIX_PRESET_PATH, the installed presets) into a table that remembers its
// file, so errors in its values name the YAML file.
#include "core/presets.hpp"
#include "core/yaml_config.hpp"
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

#include <cstdlib>

namespace cdrmix::lua {

namespace {

// Converts an override's text to the type of the value it replaces.
void push_override_value(lua_State *L, const Override &o, int existing_type) {
    const std::string where = "override '" + o.key + "=" + o.value + "'";
    double num = 0;
    const bool is_num = parse_decimal(o.value, num);
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

// The string keys of the table at idx.
std::vector<std::string> keys_of(lua_State *L, int idx) {
    std::vector<std::string> keys;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING) keys.emplace_back(lua_tostring(L, -2));
        lua_pop(L, 1);
    }
    return keys;
}

void apply_override(lua_State *L, int table, Override &o, ConfigSources &sources) {
    lua_pushvalue(L, table);
    std::string path;
    size_t start = 0;
    for (;;) {
        const size_t dot = o.key.find('.', start);
        const std::string part = o.key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (part.empty()) throw Error("override '" + o.key + "': empty key segment");
        if (dot == std::string::npos) {
            const int t = lua_gettop(L);
            lua_getfield(L, t, part.c_str());
            const int type = lua_type(L, -1);
            lua_pop(L, 1);
            if (type == LUA_TNIL) {
                o.read = std::make_shared<bool>(false);
                o.closest = closest_word(part, keys_of(L, t));
            }
            push_override_value(L, o, type);
            lua_setfield(L, t, part.c_str());
            sources.mark_key(L, t, part, o.read);
            lua_pop(L, 1);
            o.used = true;
            return;
        }
        path += (path.empty() ? "" : ".") + part;
        lua_getfield(L, -1, part.c_str());
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            const std::string near = closest_word(part, keys_of(L, lua_gettop(L)));
            throw Error("override '" + o.key + "': the script's config has no table '" + path + "'" +
                        (near.empty() ? std::string() : "; did you mean '" + near + "'?"));
        }
        lua_remove(L, -2);
        start = dot + 1;
    }
}

int l_config(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Runtime &rt = Runtime::from(L);
    for (auto &o : rt.overrides()) apply_override(L, 1, o, rt.sources());
    rt.resolved()["config"] = to_json(L, 1);
    rt.write_resolved_config();
    lua_settop(L, 1);
    return 1;
}

int l_yaml(lua_State *L) {
    const std::string path = resolve_preset(luaL_checkstring(L, 1));
    push_json(L, load_yaml_file(path));
    Runtime::from(L).sources().mark_table(L, lua_gettop(L), path);
    return 1;
}

} // namespace

void open_config(lua_State *L) {
    static const luaL_Reg functions[] = {{"config", safe<l_config>}, {"yaml", safe<l_yaml>}, {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
