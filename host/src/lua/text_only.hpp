// Every way a Lua state loads code takes text only: load, loadstring,
// loadfile, dofile and require's Lua searcher. LuaJIT's loader trusts
// bytecode, and a corrupted bytecode file crashes it.
#pragma once

#include <lua.hpp>

namespace cdrmix::lua {

// Replaces the loaders of a state that has its standard libraries open.
void text_chunks_only(lua_State *L);

} // namespace cdrmix::lua
