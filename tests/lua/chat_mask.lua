-- A chat source's loss mask in Lua: data:batch returns it, model:loss(batch, mask)
-- gives the mean cross-entropy over the kept targets (checked against the same
-- mean computed here from the logits), and that loss equals the stock trainer's
-- first-step loss and Model:evaluate's loss on the same batches.
local cfg = cdrmix.config { batch_size = 4, seq_len = 40 }
local function check(cond, msg) if not cond then error(msg, 2) end end
local B, T = cfg.batch_size, cfg.seq_len

local path = os.tmpname()
local f = assert(io.open(path, "w"))
for i = 1, 24 do
  f:write(string.format('{"messages": [{"role": "user", "content": "What is %d + %d?"}, ' ..
                        '{"role": "assistant", "content": "%d"}]}\n', i, 3 * i, 4 * i))
end
f:close()
local conf = { type = "chat", path = path, tokenizer = "byte", val_fraction = 0.25 }
local spec = { vocab_size = 256, hidden_size = 32, num_layers = 2,
               mixer = { type = "rwkv7_time_mix", head_size = 16 }, ffn = { type = "rwkv_channel_mix" } }
local function fresh_model()
  cdrmix.manual_seed(7)
  return cdrmix.model(spec)
end

local model = fresh_model()
local batch, mask = cdrmix.data(conf):batch("train", B, T)
local s = mask:shape()
check(s[1] == B and s[2] == T, "the mask is [B, T]")
local kept = mask:sum():item()
check(kept > 0 and kept < B * T, "the mask keeps some targets but not all: " .. kept)

-- The masked mean by hand: -log p(target) at the kept targets, over their count.
local logp = model:forward(batch:narrow(2, 1, T)):log_softmax(3)
local nll = logp:gather(3, batch:narrow(2, 2, T):unsqueeze(3)):squeeze(3):neg()
local by_hand = (nll * mask):sum():item() / kept
local masked = model:loss(batch, mask):item()
check(math.abs(masked - by_hand) < 1e-5, string.format("masked loss %.7f, by hand %.7f", masked, by_hand))
local everything = model:loss(batch):item()
check(math.abs(everything - masked) > 1e-3, "without the mask every target counts")
local expanded = model:loss(cdrmix.data(conf):batch("train", B, T)):item()
check(expanded == masked, "model:loss(data:batch(...)) takes the mask")

-- The stock trainer's loss of its first batch (before any update) is the same number.
local first
cdrmix.trainer({ model = fresh_model(), data = cdrmix.data(conf), steps = 1, batch_size = B, seq_len = T,
                 eval_every = 0, checkpoint_every = 0, name = "chat_mask" }):run {
  on_step = function(m) first = first or m.loss end,
}
check(math.abs(first - masked) < 1e-5, string.format("trainer %.7f, hand loop %.7f", first, masked))

-- Model:evaluate over two val batches equals the hand loop over the same batches,
-- each batch weighted by its kept targets.
local val = cdrmix.data(conf)
local sum, n = 0, 0
for _ = 1, 2 do
  local vb, vm = val:batch("val", B, T)
  local k = vm:sum():item()
  sum, n = sum + cdrmix.no_grad(function() return model:loss(vb, vm):item() end) * k, n + k
end
local ev = model:evaluate(cdrmix.data(conf), { split = "val", batch_size = B, seq_len = T, batches = 2 })
check(ev.tokens == n and math.abs(ev.loss - sum / n) < 1e-5, string.format("evaluate %.7f over %d, hand %.7f over %d",
                                                                       ev.loss, ev.tokens, sum / n, n))

-- A source without a mask returns none.
local text = cdrmix.data { type = "text", path = path, tokenizer = "byte", val_fraction = 0.25 }
local _, none = text:batch("train", 2, 8)
check(none == nil, "a text source has no mask")
os.remove(path)
print(string.format("chat_mask: ok (masked %.5f, every target %.5f, %d of %d targets kept)", masked, everything, kept,
                    B * T))
