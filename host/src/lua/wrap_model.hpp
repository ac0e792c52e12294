#pragma once

#include "model/model.hpp"

#include <lua.hpp>

#include <memory>

namespace cdrmix::lua {

inline constexpr const char *kModel = "cdrmix.Model";

std::shared_ptr<Model> &check_model(lua_State *L, int idx);

} // namespace cdrmix::lua
