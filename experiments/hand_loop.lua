-- A training loop written by hand in Lua: schedule, gradient accumulation,
-- clipping, periodic held-out evaluation and logging, then a sample. The same
-- pieces the stock trainer uses, in the open, to change at will.
--
--   cdrmix run experiments/hand_loop.lua
--   cdrmix run experiments/hand_loop.lua steps=3 eval_every=2   -- smoke run
local cfg = cdrmix.config {
  data = { type = "text", path = "../data/fortunes.txt", tokenizer = "char", val_fraction = 0.05 },
  model = cdrmix.yaml("cdrmix-tiny"),
  steps = 200, micro_batch = 8, accum = 4, seq_len = 64,
  lr = 3e-3, min_lr = 3e-4, warmup_steps = 20, grad_clip = 1.0, weight_decay = 0.1,
  eval_every = 50, eval_batches = 8,
}

local data = cdrmix.data(cfg.data)
local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
local opt = cdrmix.adamw(model, { lr = cfg.lr, weight_decay = cfg.weight_decay })
local schedule = cdrmix.schedule { lr = cfg.lr, min_lr = cfg.min_lr, warmup_steps = cfg.warmup_steps,
                                   steps = cfg.steps, kind = "cosine" }
print(model)

for step = 1, cfg.steps do
  opt:set_lr(schedule:at(step))
  opt:zero_grad()
  local loss_sum = 0
  for _ = 1, cfg.accum do
    local loss, parts = model:loss(data:batch("train", cfg.micro_batch, cfg.seq_len))
    -- Gradients add up across backward calls; dividing by accum makes the sum
    -- the gradient of the mean over all accum * micro_batch sequences.
    local scaled = loss / cfg.accum
    scaled:backward()
    loss_sum = loss_sum + parts.ce:item()
  end
  local grad_norm = cdrmix.clip_grad_norm(model, cfg.grad_clip)
  opt:step()
  local record = { step = step, loss = loss_sum / cfg.accum, lr = opt:lr(), grad_norm = grad_norm }
  if step % cfg.eval_every == 0 or step == cfg.steps then
    local ev = model:evaluate(data, { batch_size = cfg.micro_batch, seq_len = cfg.seq_len, batches = cfg.eval_batches })
    record.val_loss, record.val_ppl = ev.loss, ev.perplexity
    print(string.format("step %4d  train %.4f  val %.4f  ppl %.2f  lr %.2e  |g| %.3f", step, record.loss,
                        ev.loss, ev.perplexity, record.lr, grad_norm))
  end
  cdrmix.log(record)
end

io.write("\n--- sample ---\nThe ")
model:generate(data, "The ", { max_tokens = 200, temperature = 0.8, top_k = 40, seed = 7,
                               on_text = function(piece) io.write(piece); io.flush() end })
print("\n--------------")
