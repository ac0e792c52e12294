#pragma once

#include <cdrmix/data_source.hpp>
#include <cdrmix/tokenizer.hpp>

#include <lua.hpp>

#include <memory>

namespace cdrmix::lua {

inline constexpr const char *kData = "cdrmix.Data";
inline constexpr const char *kTokenizer = "cdrmix.Tokenizer";

std::shared_ptr<DataSource> &check_data(lua_State *L, int idx);
// Accepts a Tokenizer or a Data (whose tokenizer is used).
std::shared_ptr<Tokenizer> check_tokenizer(lua_State *L, int idx);

} // namespace cdrmix::lua
