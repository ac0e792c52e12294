#include "lua/lua_util.hpp"

#include <cdrmix/error.hpp>

#include <c10/util/Exception.h>

#include <cmath>

namespace cdrmix::lua {

std::string exception_message(const std::exception &e) {
    std::string msg;
    if (auto *c10 = dynamic_cast<const c10::Error *>(&e)) msg = c10->msg();
    else msg = e.what();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg.resize(nl);
    return msg;
}

bool is_array(lua_State *L, int idx, size_t &n) {
    n = lua_objlen(L, idx);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        ++count;
        lua_pop(L, 1);
    }
    return count == n && (n > 0 || count == 0);
}

Json to_json(lua_State *L, int idx) {
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return nullptr;
    case LUA_TBOOLEAN: return static_cast<bool>(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
        return d;
    }
    case LUA_TSTRING: return std::string(lua_tostring(L, idx));
    case LUA_TTABLE: {
        size_t n = 0;
        if (is_array(L, idx, n) && n > 0) {
            Json arr = Json::array();
            for (size_t i = 1; i <= n; ++i) {
                lua_rawgeti(L, idx, static_cast<int>(i));
                arr.push_back(to_json(L, -1));
                lua_pop(L, 1);
            }
            return arr;
        }
        Json obj = Json::object();
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 2);
                throw Error("config tables must have string keys (mixed list/table?)");
            }
            obj[lua_tostring(L, -2)] = to_json(L, -1);
            lua_pop(L, 1);
        }
        return obj;
    }
    default: throw Error(std::string("cannot use a Lua ") + luaL_typename(L, idx) + " as a config value");
    }
}

void push_json(lua_State *L, const Json &j) {
    switch (j.type()) {
    case Json::value_t::null: lua_pushnil(L); break;
    case Json::value_t::boolean: lua_pushboolean(L, j.get<bool>()); break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: lua_pushnumber(L, j.get<double>()); break;
    case Json::value_t::string: lua_pushstring(L, j.get<std::string>().c_str()); break;
    case Json::value_t::array: {
        lua_createtable(L, static_cast<int>(j.size()), 0);
        int i = 1;
        for (const auto &v : j) {
            push_json(L, v);
            lua_rawseti(L, -2, i++);
        }
        break;
    }
    case Json::value_t::object: {
        lua_createtable(L, 0, static_cast<int>(j.size()));
        for (auto it = j.begin(); it != j.end(); ++it) {
            push_json(L, it.value());
            lua_setfield(L, -2, it.key().c_str());
        }
        break;
    }
    default: lua_pushnil(L);
    }
}

std::string opt_string_field(lua_State *L, int idx, const char *key, const std::string &fallback) {
    if (!lua_istable(L, idx)) return fallback;
    lua_getfield(L, idx, key);
    std::string out = lua_isnil(L, -1) ? fallback : std::string(luaL_checkstring(L, -1));
    lua_pop(L, 1);
    return out;
}

double opt_number_field(lua_State *L, int idx, const char *key, double fallback) {
    if (!lua_istable(L, idx)) return fallback;
    lua_getfield(L, idx, key);
    double out = lua_isnil(L, -1) ? fallback : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return out;
}

int traceback_handler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_pushstring(L, msg ? msg : "(error object is not a string)");
    lua_pushinteger(L, 2);
    lua_call(L, 2, 1);
    return 1;
}

bool call_with_json(lua_State *L, const Json &arg) {
    const int fn = lua_gettop(L);
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, fn);
    push_json(L, arg);
    if (lua_pcall(L, 1, 1, fn) != 0) {
        std::string msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "error in callback";
        lua_pop(L, 2);
        auto nl = msg.find('\n');
        throw Error(nl == std::string::npos ? msg : msg.substr(0, nl));
    }
    const bool stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 2);
    return !stop;
}

} // namespace cdrmix::lua
