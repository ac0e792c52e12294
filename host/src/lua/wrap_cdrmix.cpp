// Module-level functions of `cdrmix`:
//   cdrmix.log{name = value, ...}   a record in the script's run (runs/<script>-<stamp>/metrics.jsonl)
//   cdrmix.threads() / cdrmix.set_threads(n)   intra-op threads
//   cdrmix.clock()                  seconds on a monotonic clock
//   cdrmix.plugins()                what is loaded, from where
//   cdrmix.import{format = "rwkv-lm" | "hf", source = PATH, out = DIR [, dtype = the source's] [, vocab = FILE]}
//                                   a published RWKV-7 model as a checkpoint folder; returns DIR
//                                   (then cdrmix.model(DIR .. "/model.json") and model:load(DIR))
#include "core/system_info.hpp"
#include "interop/import_model.hpp"
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <ATen/Parallel.h>

#include <chrono>

namespace cdrmix::lua {

namespace {

int l_log(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    Runtime &rt = Runtime::from(L);
    Json rec = to_json(L, 1);
    if (!rec.is_object()) throw Error("cdrmix.log expects a table of named values");
    Run &run = rt.run(rt.script_name());
    run.open();
    rec["event"] = "log";
    run.bus().publish(rec);
    return 0;
}

int l_threads(lua_State *L) {
    lua_pushinteger(L, at::get_num_threads());
    return 1;
}

int l_set_threads(lua_State *L) {
    lua_pushinteger(L, configure_threads(static_cast<int>(luaL_checkinteger(L, 1))));
    return 1;
}

// Seconds on a monotonic clock, for scripts that budget wall time (os.time has
// one-second resolution and os.clock counts CPU time).
int l_clock(lua_State *L) {
    lua_pushnumber(L, std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
    return 1;
}

int l_plugins(lua_State *L) {
    Json list = Json::array();
    for (const auto &f : Registry::global().list())
        list.push_back({{"kind", kind_name(f.kind)}, {"name", f.name}, {"plugin", f.plugin},
                        {"version", f.plugin_version}, {"file", f.file}});
    push_json(L, list);
    return 1;
}

int l_import(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const ImportOptions options = ImportOptions::from_config(Runtime::from(L).config_of(L, 1, "cdrmix.import"));
    lua_pushstring(L, import_model(options, Registry::global()).c_str());
    return 1;
}

} // namespace

void open_cdrmix(lua_State *L) {
    static const luaL_Reg functions[] = {{"log", safe<l_log>},         {"threads", safe<l_threads>},
                                         {"set_threads", safe<l_set_threads>}, {"clock", safe<l_clock>},
                                         {"plugins", safe<l_plugins>}, {"import", safe<l_import>},
                                         {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
