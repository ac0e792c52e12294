-- A hand-written loop trains an MoE model whose router is written in Lua
-- (experiments/modules/topk_router.lua), saves it (model:save), loads it back
-- (cdrmix.load: same logits and tokenizer), and the stock trainer resumes from
-- the folder (weights only: at a negligible lr its model ends with the saved weights).
-- `out` names the folder, which tests/cli/save_load.sh then hands to
-- `cdrmix eval` and `cdrmix generate`.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char" },
  steps = 5, out = "",
}
local data = cdrmix.data(cfg.data)
local function build()
  return cdrmix.model { vocab_size = data:vocab_size(), hidden_size = 32, num_layers = 2,
                        mixer = { type = "rwkv7_time_mix", head_size = 16 },
                        ffn = { type = "rwkv_channel_mix" },
                        moe_every = 2, num_experts = 4, top_k = 2,
                        -- relative to this script's folder first, then the working directory
                        router = { type = "lua", file = "experiments/modules/topk_router.lua" },
                        expert = { type = "rwkv_channel_mix", expansion = 2 } }
end
local model = build()
assert(model:named_parameters()["blocks.1.ffn.router.gate.weight"], "the Lua router's gate is a model parameter")
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

local ids = data:encode("The quick brown fox.")
local tokens = ids:view(1, ids:numel())
local back, tokenizer = cdrmix.load(cfg.out)
local diff = (back:forward(tokens) - model:forward(tokens)):abs():max():item()
assert(diff == 0, "the loaded model's logits differ by " .. diff)
assert(tokenizer:vocab_size() == data:vocab_size(), "the tokenizer comes back")
assert(tokenizer:decode(tokenizer:encode("fox")) == "fox", "the tokenizer round-trips text")

-- The stock trainer resumes from the saved folder: a fresh model takes its
-- weights (two steps at lr 1e-12 move them by about 1e-12).
local fresh = build()
local before = (fresh:forward(tokens) - model:forward(tokens)):abs():max():item()
assert(before > 1e-3, "a fresh model differs at first: " .. before)
cdrmix.trainer { model = fresh, data = data, name = "resumed", steps = 2, batch_size = 2, seq_len = 16,
                 lr = 1e-12, min_lr = 1e-12, warmup_steps = 0, weight_decay = 0, eval_every = 0,
                 checkpoint_every = 0, resume = cfg.out }:run()
fresh:eval()
diff = (fresh:forward(tokens) - model:forward(tokens)):abs():max():item()
assert(diff < 1e-6, "the resumed trainer's model differs from the saved one by " .. diff)

local ok, err = pcall(function() model:save(cfg.out, data) end)
assert(not ok and tostring(err):find("save_load.lua"), "saving over a full folder is refused: " .. tostring(err))
print("save_load: ok")
