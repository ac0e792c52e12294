-- Quality at equal time: character-level Tiny Shakespeare (90/10 split) with a
-- wall-clock budget of 120 s on this machine's CPU. The model is the preset
-- configs/models/cdrmix-shakespeare.yaml, the best we found with the workbench
-- for this budget (docs/benchmarks.md has the search and the curve).
--
-- The budget covers everything after the model is built: training steps and
-- the periodic evaluations that draw the curve. The run stops after the step
-- that crosses it; then the whole validation split is evaluated (not counted).
--
--   cdrmix run experiments/shakespeare_120s.lua data.path=../shared/data/tinyshakespeare.txt
--   cdrmix run experiments/shakespeare_120s.lua budget_s=60 ...    -- any key can be overridden
local cfg = cdrmix.config {
  data = { type = "text", path = "../shared/data/tinyshakespeare.txt", tokenizer = "char", val_fraction = 0.1 },
  model = cdrmix.yaml("cdrmix-shakespeare"),
  budget_s = 120,
  target_val_loss = 1.75,
  train = {
    steps = 500, batch_size = 16, seq_len = 128,
    lr = 3e-3, min_lr = 3e-4, warmup_steps = 30,
    eval_every = 50, eval_batches = 8, log_every = 10,
    checkpoint_every = 0,
  },
}

local f = io.open(cfg.data.path, "rb")
if not f then
  error("tinyshakespeare not found at '" .. cfg.data.path .. "': pass data.path=FILE " ..
        "(https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt)", 0)
end
f:close()

local data = cdrmix.data(cfg.data)
local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
print(model)
print(string.format("%d threads, budget %.0f s, target val loss %.2f", cdrmix.threads(), cfg.budget_s,
                    cfg.target_val_loss))

local t = cfg.train
t.model, t.data, t.name = model, data, "shakespeare_120s"
local start = cdrmix.clock()
local curve = {}
local result = cdrmix.trainer(t):run {
  on_step = function(rec) return cdrmix.clock() - start < cfg.budget_s end,
  on_eval = function(ev)
    curve[#curve + 1] = { step = ev.step, wall = cdrmix.clock() - start, val = ev.val_loss }
    return true
  end,
}
local wall = cdrmix.clock() - start
local full = model:evaluate(data, { split = "val", batch_size = t.batch_size, seq_len = t.seq_len })

print("\n step   wall s   val loss (" .. t.eval_batches .. " batches)")
local reached
for _, p in ipairs(curve) do
  print(string.format("%5d %8.1f %10.4f", p.step, p.wall, p.val))
  if not reached and p.val <= cfg.target_val_loss then reached = p end
end
print(string.format("\n%d steps, %.0f tokens/s, training + evals %.1f s of the %.0f s budget", result.step,
                    result.tokens_per_s, wall, cfg.budget_s))
print(string.format("whole validation split (%d tokens): loss %.4f, perplexity %.2f", full.tokens, full.loss,
                    full.perplexity))
if reached then
  print(string.format("target %.2f first reached at step %d, %.1f s", cfg.target_val_loss, reached.step, reached.wall))
end
cdrmix.log { event = "quality", wall_s = wall, val_loss = full.loss, steps = result.step,
             reached_s = reached and reached.wall or -1 }
