-- The stock trainer on several ranks (`cdrmix launch -n 2 run dist_trainer.lua`):
-- every rank gets the same aggregated step records (world size, per-rank
-- figures, communication time, tokens over all ranks), and rank 0 alone
-- writes the run folder. Prints one line per rank for the shell test, which
-- also kills a rank of a longer run of it and resumes. EXPERT_PARALLEL=P in
-- the environment splits the MoE layer's 4 experts over groups of P ranks.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
  train = { steps = 6, batch_size = 4, seq_len = 32, lr = 4e-3, warmup_steps = 2, eval_every = 3,
            eval_batches = 2, log_every = 2, checkpoint_every = 2, name = "dist_trainer" },
}
local function check(cond, msg) if not cond then error(msg, 2) end end
local d = cdrmix.dist
local world = d.world_size()

local data = cdrmix.data(cfg.data)
local expert_parallel = tonumber(os.getenv("EXPERT_PARALLEL") or "1")
local model = cdrmix.model("cdrmix-tiny", { vocab_size = data:vocab_size(), expert_parallel = expert_parallel })
local t = cfg.train
t.model, t.data = model, data
local steps, per_step, tokens = 0, t.batch_size * t.seq_len * world, nil
local result = cdrmix.trainer(t):run {
  on_step = function(m)
    steps = steps + 1
    if world > 1 then
      check(m.world_size == world and #m.ranks == world, "world_size and ranks in the step record")
      check(m.comm_s >= 0 and m.ranks[world].tokens_per_s > 0, "communication time and per-rank tokens/s")
    end
    -- (a run resumed from another world size started from that run's count)
    check(tokens == nil or m.tokens - tokens == per_step, string.format("step %d read %d tokens: all ranks'", m.step, m.tokens - (tokens or 0)))
    tokens = m.tokens
    if m.moe then
      local n = 0
      for _, c in ipairs(m.moe[1].tokens_per_expert) do n = n + c end
      check(n == per_step * 2, "routing statistics count every rank's tokens (top-2): " .. n)
    end
  end,
}
print(string.format("dist_trainer: rank %d of %d ok, %d steps to step %d, loss %.4f, %d parameters here, run %s",
                    d.rank(), world, steps, result.step, result.train_loss, model:num_parameters(), result.run_dir))
