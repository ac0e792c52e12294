-- A training loop written by hand: forward, backward and step from Lua.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "byte" },
  steps = 30, lr = 5e-3,
}
local data = cdrmix.data(cfg.data)
local model = cdrmix.model("cdrmix-tiny", { vocab_size = data:vocab_size() })
local opt = cdrmix.adamw(model, { lr = cfg.lr, weight_decay = 0.01 })
local first, last
for step = 1, cfg.steps do
  local batch = data:batch("train", 8, 32)
  opt:zero_grad()
  local loss, parts = model:loss(batch)
  loss:backward()
  cdrmix.clip_grad_norm(model, 1.0)
  opt:step()
  first = first or parts.ce:item()
  last = parts.ce:item()
  cdrmix.log { step = step, loss = last }
end
if not (last < first - 0.5) then error(string.format("loss did not fall: %.3f -> %.3f", first, last)) end
print(string.format("hand_loop: ok (%.3f -> %.3f)", first, last))
