// Where the values of a script's config tables came from, so a consumer's
// error names the YAML file a preset was read from, or "command line" for an
// override, instead of the script. Tables are remembered by identity (and kept
// alive, so an address is never reused); sources are attached when a table is
// turned into a Config for a consumer.
#pragma once

#include <cdrmix/config.hpp>

#include <lua.hpp>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

namespace cdrmix::lua {

inline constexpr const char *kCommandLine = "command line";

class ConfigSources {
public:
    // The table at idx came whole from `source` (a YAML file).
    void mark_table(lua_State *L, int idx, const std::string &source);
    // Key `key` of the table at idx was set on the command line; `read` (may be
    // null) is set once a consumer that checks its keys reads it.
    void mark_key(lua_State *L, int idx, const std::string &key, std::shared_ptr<bool> read);
    // The table at idx as a Config for `owner`, with every source inside it.
    Config config(lua_State *L, int idx, const std::string &owner, const std::string &script) const;

private:
    struct Origin {
        std::string source;                                 // "" when only some keys are marked
        std::map<std::string, std::shared_ptr<bool>> keys; // keys set on the command line
    };
    Origin &origin(lua_State *L, int idx);
    void collect(lua_State *L, int idx, const std::string &path, ValueSources &out, int depth) const;

    std::unordered_map<const void *, Origin> tables_;
};

} // namespace cdrmix::lua
