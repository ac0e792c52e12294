// The `lua` router and `lua` block: MoE routers and blocks written in Lua
// (module_state.hpp has the module file's shape), registered by the host
// itself, since they need its LuaJIT and tensor bindings:
//
//   router = {type = "lua", file = "topk_router.lua", options = {load_balance_alpha = 0.01}}
//   mixer  = {type = "lua", file = "retention_block.lua", options = {heads = 4}}
//
// A router module has route(x, input) -> {indices =, weights =, probs = [, losses = {name = tensor}]}
// with x [N,C] and input {training, decoding, layer, token_ids}. A block module
// has forward(x, state, ctx) -> y [, new_state]: x [B,T,C]; state is nil for a
// parallel call, otherwise a list of tensors (empty at the start of a
// sequence) and the block returns the list to carry on; ctx {training,
// decoding, layer, token_ids, losses = {}} takes auxiliary losses by name.
// A block with forward_tokens(x) ([N,C] -> [N,C], no dependence between
// tokens) can also serve as an MoE expert.
#pragma once

#include <cdrmix/registry.hpp>

namespace cdrmix::lua {

// Adds the `lua` router and block to the registry (once per registry).
void register_lua_modules(Registry &registry);

} // namespace cdrmix::lua
