-- Research in Lua, end to end through the host: a model built from a Lua
-- block (retention) and a Lua router, in float64.
--   * model:step token by token gives the parallel forward's logits;
--   * model:loss{routing = true} returns per-layer routing statistics that
--     agree with the batch (every token's top_k slots counted);
--   * cdrmix.adamw over {model, probe} trains the model and a Lua-owned probe.
cdrmix.manual_seed(1)
local V, B, T = 20, 2, 7
local model = cdrmix.model {
  vocab_size = V, hidden_size = 32, num_layers = 2,
  mixer = { type = "lua", file = "../../experiments/modules/retention_block.lua", options = { heads = 2 } },
  ffn = { type = "rwkv_channel_mix" },
  moe_every = 1, num_experts = 4, top_k = 2,
  router = { type = "lua", file = "../../experiments/modules/topk_router.lua" },
  expert = { type = "rwkv_channel_mix", expansion = 2 },
}
model:double()
model:eval()
local tokens = cdrmix.randint(0, V, { B, T })
local whole = model:forward(tokens)
assert(whole:dtype() == "float64", "a float64 model gives float64 logits")

local pieces, state = {}, nil
for t = 1, T do
  pieces[t], state = model:step(tokens[{ {}, { t, t } }], state)
end
local diff = (cdrmix.cat(pieces, 2) - whole):abs():max():item()
assert(diff < 1e-10, "streaming logits differ from the parallel forward by " .. diff)
-- A state passed in is left as it was: stepping from it again gives the same logits.
local _, s3 = model:step(tokens[{ {}, { 1, 3 } }])
local a = model:step(tokens[{ {}, { 4, 4 } }], s3)
local b = model:step(tokens[{ {}, { 4, 4 } }], s3)
assert((a - b):abs():max():item() == 0, "stepping twice from one state gives the same logits")
assert((a - whole[{ {}, { 4, 4 } }]):abs():max():item() < 1e-10, "a 3-token piece then one token equals the forward")

model:train()
local batch = cdrmix.randint(0, V, { B, T + 1 })
local loss, parts = model:loss(batch, { routing = true })
assert(#parts.routing == 2, "one routing table per MoE layer, got " .. #parts.routing)
for _, layer in ipairs(parts.routing) do
  local routed = 0
  for _, n in ipairs(layer.tokens_per_expert) do routed = routed + n end
  assert(routed == B * T * 2, "layer " .. layer.layer .. ": " .. routed .. " slots routed, expected " .. B * T * 2)
  assert(layer.load_entropy >= 0 and layer.load_entropy <= 1 + 1e-9, "load entropy in [0, 1]")
  assert(layer.losses.load_balance and layer.losses.z_loss, "the Lua router's losses are in the statistics")
end
assert(parts["layer0.load_balance"] and parts["layer1.z_loss"], "auxiliary losses by name")
assert(math.abs(loss:item() - (parts.ce + parts["layer0.load_balance"] + parts["layer0.z_loss"] +
  parts["layer1.load_balance"] + parts["layer1.z_loss"]):item()) < 1e-12, "the total is ce plus the auxiliary losses")

-- A Lua-owned probe trained beside the model by one optimiser.
local probe = { w = cdrmix.parameter({ 32, V }, { normal = 0.1 }):double() }
local ok, err = pcall(cdrmix.adamw, { model = model, probe = probe })
assert(not ok and tostring(err):find("computed from other tensors"), "a computed tensor is refused: " .. tostring(err))
probe.w = probe.w:detach():requires_grad(true) -- a float64 leaf: a parameter
local before = probe.w:clone()
local opt = cdrmix.adamw({ model = model, probe = probe }, { lr = 1e-2 })
local first, last
for step = 1, 8 do
  opt:zero_grad()
  local l = model:loss(batch) + (model:forward(tokens):matmul(cdrmix.ones({ V, 32 }, "float64")):matmul(probe.w)):square():mean()
  l:backward()
  opt:step()
  first = first or l:item()
  last = l:item()
end
assert(last < first, string.format("the loss falls over 8 steps on one batch: %.4f -> %.4f", first, last))
assert((probe.w - before):abs():max():item() > 0, "the probe was updated")
print(string.format("lua_modules: ok (streaming diff %.2e, loss %.4f -> %.4f)", diff, first, last))
