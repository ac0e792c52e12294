-- A hand-written loop saves its model (model:save), loads it back (cdrmix.load)
-- and gets the same logits and tokenizer; `out` names the folder, which
-- tests/cli/save_load.sh then hands to `cdrmix eval` and `cdrmix generate`.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char" },
  steps = 5, out = "",
}
local data = cdrmix.data(cfg.data)
local model = cdrmix.model { vocab_size = data:vocab_size(), hidden_size = 32, num_layers = 2,
                             mixer = { type = "rwkv7_time_mix", head_size = 16 },
                             ffn = { type = "rwkv_channel_mix" } }
local opt = cdrmix.adamw(model, { lr = 5e-3 })
for _ = 1, cfg.steps do
  opt:zero_grad()
  local loss = model:loss(data:batch("train", 4, 32))
  loss:backward()
  opt:step()
end
model:eval()
local path = model:save(cfg.out, data)
assert(path:sub(1, 1) == "/", "save returns an absolute path: " .. path)

local back, tokenizer = cdrmix.load(cfg.out)
local ids = data:encode("The quick brown fox.")
local tokens = ids:view(1, ids:numel())
local diff = (back:forward(tokens) - model:forward(tokens)):abs():max():item()
assert(diff == 0, "the loaded model's logits differ by " .. diff)
assert(tokenizer:vocab_size() == data:vocab_size(), "the tokenizer comes back")
assert(tokenizer:decode(tokenizer:encode("fox")) == "fox", "the tokenizer round-trips text")

local ok, err = pcall(function() model:save(cfg.out, data) end)
assert(not ok and tostring(err):find("save_load.lua"), "saving over a full folder is refused: " .. tostring(err))
print("save_load: ok")
