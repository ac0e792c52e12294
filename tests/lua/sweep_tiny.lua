-- A run small enough to sweep, replay and branch in tests (tests/cli/sweep.sh,
-- replay.sh, branch.sh): the tiny RWKV-7 + MoE preset with its expert count and
-- router open to overrides, and a router swap at step swap.at (0: none).
local model = cdrmix.yaml("cdrmix-tiny")
model.router = { type = "topk" } -- the type alone: routers take different keys (sinkhorn: tol, max_iters)
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
  model = model,
  train = { steps = 4, batch_size = 2, seq_len = 16, lr = 4e-3, warmup_steps = 1, eval_every = 2,
            eval_batches = 1, log_every = 2, checkpoint_every = 0, seed = 1 },
  swap = { at = 0, router = "sinkhorn" },
}
local data = cdrmix.data(cfg.data)
local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
local t = cfg.train
t.model, t.data, t.name = model, data, "sweep_tiny"
local trainer = cdrmix.trainer(t)
trainer:run{ on_step = function(rec)
  if rec.step == cfg.swap.at then trainer:swap_router("all", { type = cfg.swap.router }) end
  return true
end }
