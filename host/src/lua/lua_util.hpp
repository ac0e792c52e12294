// Helpers for binding C++ to LuaJIT through the classic C API (never the FFI:
// LibTorch throws C++ exceptions, and those must not cross compiled FFI frames).
//
//   safe<F>        runs a lua_CFunction; a C++ exception becomes a Lua error
//                  raised *after* the catch block, with the script's file:line.
//   push / check   userdata holding a C++ value (a tensor handle or a
//                  shared_ptr) in a named metatable; __gc destroys it.
//   to_json / push_json   Lua tables <-> JSON, so one config value can come
//                  from a Lua table or a YAML file alike.
#pragma once

#include <cdrmix/config.hpp>

#include <lua.hpp>

#include <new>
#include <string>

namespace cdrmix::lua {

// Formats the message of any C++ exception for a Lua error (LibTorch messages
// lose their C++ backtrace; only the first line is kept).
std::string exception_message(const std::exception &e);

template <lua_CFunction F> int safe(lua_State *L) {
    bool failed = false;
    {
        std::string msg;
        try {
            return F(L);
        } catch (const std::exception &e) {
            msg = exception_message(e);
            failed = true;
        }
        luaL_where(L, 1);
        lua_pushstring(L, msg.c_str());
        lua_concat(L, 2);
    } // msg destroyed before the non-local exit below
    return failed ? lua_error(L) : 0;
}

// __gc of class T (its metatable is upvalue 1). A script can reach __gc
// through getmetatable and call it by hand, on anything: only a live value of
// this class is destroyed, and it loses its metatable, so neither the
// collector nor a method can touch it again.
template <class T> int gc(lua_State *L) {
    void *p = lua_touserdata(L, 1);
    if (!p || lua_objlen(L, 1) != sizeof(T) || !lua_getmetatable(L, 1)) return 0;
    const bool mine = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (!mine) return 0;
    static_cast<T *>(p)->~T();
    lua_pushnil(L);
    lua_setmetatable(L, 1);
    return 0;
}

// Creates metatable `tname` with methods reachable through __index and the
// given metamethods; __gc destroys the stored T.
template <class T>
void define_class(lua_State *L, const char *tname, const luaL_Reg *methods, const luaL_Reg *metamethods = nullptr) {
    luaL_newmetatable(L, tname);
    lua_newtable(L);
    if (methods) luaL_register(L, nullptr, methods);
    lua_setfield(L, -2, "__index");
    if (metamethods) luaL_register(L, nullptr, metamethods);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, &gc<T>, 1);
    lua_setfield(L, -2, "__gc");
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

template <class T> void push(lua_State *L, T value, const char *tname) {
    void *mem = lua_newuserdata(L, sizeof(T));
    new (mem) T(std::move(value));
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}

// The metatable alone does not prove what a userdata holds: debug.setmetatable
// can give a class's metatable to any userdata (newproxy's are empty), so the
// block's size is checked too.
template <class T> T &check(lua_State *L, int idx, const char *tname) {
    void *p = luaL_checkudata(L, idx, tname);
    if (lua_objlen(L, idx) != sizeof(T)) luaL_typerror(L, idx, tname);
    return *static_cast<T *>(p);
}

template <class T> T *test(lua_State *L, int idx, const char *tname) {
    void *p = lua_touserdata(L, idx);
    if (!p || lua_objlen(L, idx) != sizeof(T) || !lua_getmetatable(L, idx)) return nullptr;
    luaL_getmetatable(L, tname);
    const bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? static_cast<T *>(p) : nullptr;
}

// Tables with keys 1..n become arrays, other tables objects. Integral numbers become integers.
Json to_json(lua_State *L, int idx);
// Whether the table at idx (absolute index) has exactly the keys 1..n; n is set either way.
bool is_array(lua_State *L, int idx, size_t &n);
void push_json(lua_State *L, const Json &j);

// Reads an optional field of the table at idx (nil when absent).
std::string opt_string_field(lua_State *L, int idx, const char *key, const std::string &fallback);
double opt_number_field(lua_State *L, int idx, const char *key, double fallback);

// Calls the function at the top of the stack with one JSON argument under a
// traceback handler. A Lua error becomes a cdrmix::Error carrying its message.
// Returns false only when the function returned exactly `false`.
bool call_with_json(lua_State *L, const Json &arg);

// debug.traceback as a message handler, for lua_pcall.
int traceback_handler(lua_State *L);

} // namespace cdrmix::lua
