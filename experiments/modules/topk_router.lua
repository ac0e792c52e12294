-- A top-k softmax router written in Lua: the same decisions and losses as the
-- C++ `topk` router plugin (softmax over a linear gate, the k largest
-- probabilities renormalised, the Switch load-balance loss and the ST-MoE
-- z-loss). Name it in a model spec:
--   router = {type = "lua", file = "modules/topk_router.lua", options = {load_balance_alpha = 0.01}}
-- ctx: {hidden_size, num_experts, top_k, layer}; options: the spec's `options` table.
return function(ctx, options)
  local alpha = options.load_balance_alpha or 0.01
  local z_coef = options.z_loss or 0.001
  -- Every tensor in the returned table is the router's: cdrmix.parameter ones
  -- are trained, checkpointed and counted by `describe`. Named gate.weight, as
  -- the C++ router's: matrices named *weight get weight decay, and checkpoints
  -- of either router load into the other.
  local router = {gate = {weight = cdrmix.parameter({ctx.num_experts, ctx.hidden_size}, {normal = 0.02})}}

  -- x: [N, C] token features; input: {training, decoding, token_ids}.
  function router.route(x, input)
    local logits = x:matmul(router.gate.weight:t())
    -- Decisions in float32 at least, whatever the activations' dtype.
    if logits:dtype() ~= "float64" then logits = logits:float() end
    local probs = logits:softmax(-1)
    local top_p, top_i = probs:topk(ctx.top_k)
    local out = {indices = top_i, weights = top_p / top_p:sum(-1, true), probs = probs:detach()}
    if input.training then
      out.losses = {}
      if alpha > 0 then out.losses.load_balance = cdrmix.load_balance_loss(probs, top_i, ctx.num_experts, alpha) end
      if z_coef > 0 then out.losses.z_loss = cdrmix.router_z_loss(logits, z_coef) end
    end
    return out
  end

  return router
end
