-- Every mixer and feed-forward block trains under bf16 autocast: from the same
-- start, the first loss (forward only) is close to float32's and the next
-- (after a bf16 backward and update) is finite.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
}
local function check(cond, msg) if not cond then error(msg, 2) end end
local data = cdrmix.data(cfg.data)

local mixers = {
  { type = "rwkv7_time_mix", head_size = 16 }, { type = "rwkv6_time_mix", head_size = 16 },
  { type = "attention", num_heads = 2 }, { type = "mla", num_heads = 2 }, { type = "mamba2" },
}
local ffns = { { type = "rwkv_channel_mix" }, { type = "swiglu" }, { type = "relu2" } }

local function losses(spec, autocast)
  cdrmix.manual_seed(1)
  local model = cdrmix.model(spec)
  local out = {}
  cdrmix.trainer { model = model, data = cdrmix.data(cfg.data), -- a fresh stream: both runs read the same batches name = "autocast_blocks", steps = 2, batch_size = 2, seq_len = 16,
                   lr = 1e-3, warmup_steps = 0, eval_every = 0, eval_batches = 1, autocast = autocast }
    :run { on_step = function(m) out[#out + 1] = m.loss end }
  return out
end

local differs = false -- bf16 really ran somewhere: float32 twice would match bitwise
for i, mixer in ipairs(mixers) do
  local ffn = ffns[(i - 1) % #ffns + 1]
  local spec = { vocab_size = data:vocab_size(), hidden_size = 32, num_layers = 2, mixer = mixer, ffn = ffn,
                 moe_every = 2, num_experts = 2, top_k = 1, expert = ffn }
  local a, b = losses(spec, "none"), losses(spec, "bf16")
  local what = mixer.type .. " + " .. ffn.type
  check(math.abs(b[1] - a[1]) < 0.005, string.format("%s: first loss bf16 %.4f, float32 %.4f", what, b[1], a[1]))
  check(math.abs(b[2] - a[2]) < 0.01, string.format("%s: second loss bf16 %.4f, float32 %.4f", what, b[2], a[2]))
  differs = differs or a[1] ~= b[1]
  print(string.format("%-34s first loss float32 %.4f bf16 %.4f; second %.4f / %.4f", what, a[1], b[1], a[2], b[2]))
end
check(differs, "autocast changed no loss at all")
print("autocast_blocks: ok")
