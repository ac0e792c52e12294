-- A hand-written loop with gradient accumulation: 4 micro-batches of 2
-- sequences, each loss divided by 4, make the same update as one batch of 8.
-- Also: cdrmix.schedule, opt:lr, clip_grad_norm measuring only, model:evaluate.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
}
local function check(cond, msg) if not cond then error(msg, 2) end end

local data = cdrmix.data(cfg.data)
-- Dense (no MoE): a load-balance loss depends on which tokens share a batch.
local spec = { vocab_size = data:vocab_size(), hidden_size = 32, num_layers = 2,
               mixer = { type = "rwkv7_time_mix", head_size = 16 }, ffn = { type = "rwkv_channel_mix" } }
local batch = data:batch("train", 8, 24):tolist()
local function rows(from, to)
  local t = {}
  for i = from, to do t[#t + 1] = batch[i] end
  return cdrmix.tensor(t):long()
end

local schedule = cdrmix.schedule { lr = 1e-2, min_lr = 1e-3, warmup_steps = 2, steps = 10 }
check(math.abs(schedule:at(1) - 5e-3) < 1e-12 and math.abs(schedule:at(2) - 1e-2) < 1e-12, "warm-up")
check(math.abs(schedule:at(7) - 5.5e-3) < 1e-12, "cosine halfway between lr and min_lr")

local function one_step(micro)
  cdrmix.manual_seed(11)
  local model = cdrmix.model(spec)
  local opt = cdrmix.adamw(model, { lr = 1e-2 })
  opt:set_lr(schedule:at(2))
  check(math.abs(opt:lr() - 1e-2) < 1e-12, "opt:lr")
  opt:zero_grad()
  local n = 8 / micro
  for i = 1, n do
    local loss = model:loss(rows((i - 1) * micro + 1, i * micro))
    local scaled = loss / n
    scaled:backward()
  end
  local norm = cdrmix.clip_grad_norm(model, 0) -- measures without clipping
  opt:step()
  return model, norm
end

local whole, norm8 = one_step(8)
local accumulated, norm2 = one_step(2)
check(norm8 > 0 and math.abs(norm8 - norm2) <= 1e-5 * norm8, string.format("grad norms %.9g vs %.9g", norm8, norm2))
local probe = rows(1, 8)
local a, b = whole:loss(probe):item(), accumulated:loss(probe):item()
check(math.abs(a - b) <= 1e-5, string.format("losses after the step: %.9g vs %.9g", a, b))

local untrained = cdrmix.model(spec)
local before = untrained:loss(probe):item()
check(a < before, string.format("the step lowered the loss (%.4f -> %.4f)", before, a))

local ev = whole:evaluate(data, { batch_size = 4, seq_len = 24, batches = 3 })
check(ev.tokens == 3 * 4 * 24 and math.abs(ev.perplexity - math.exp(ev.loss)) < 1e-6 * ev.perplexity, "evaluate")
print(string.format("hand_loop_accum: ok (grad norm %.6f vs %.6f, loss %.6f vs %.6f)", norm8, norm2, a, b))
