#include "lua/text_only.hpp"

#include <cdrmix/error.hpp>

#include <string>

namespace cdrmix::lua {

void text_chunks_only(lua_State *L) {
    static const char *prelude = R"(
local load, loadfile, searchpath = load, loadfile, package.searchpath
_G.load = function(chunk, name, mode, ...) return load(chunk, name, "t", ...) end
_G.loadstring = function(s, name) return load(s, name, "t") end
_G.loadfile = function(path, mode, ...) return loadfile(path, "t", ...) end
_G.dofile = function(path) return assert(loadfile(path, "t"))() end
package.loaders[2] = function(name)
  local path, err = searchpath(name, package.path)
  if not path then return err end
  return assert(loadfile(path, "t"))
end
)";
    if (luaL_dostring(L, prelude) != 0) throw Error(std::string("Lua prelude: ") + lua_tostring(L, -1));
}

} // namespace cdrmix::lua
