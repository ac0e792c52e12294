#pragma once

#include <ATen/core/Tensor.h>
#include <lua.hpp>

namespace cdrmix::lua {

inline constexpr const char *kTensor = "cdrmix.Tensor";

void push_tensor(lua_State *L, at::Tensor t);
at::Tensor &check_tensor(lua_State *L, int idx);

} // namespace cdrmix::lua
