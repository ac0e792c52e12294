-- The stock trainer's options from Lua: gradient accumulation, periodic samples,
-- checkpoints every N steps with only the newest kept, every callback, and
-- trainer:checkpoint(). Run with data.path pointing at a corpus.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
}
local function check(cond, msg) if not cond then error(msg, 2) end end
local function exists(path) local f = io.open(path) if f then f:close() end return f ~= nil end

local data = cdrmix.data(cfg.data)
local model = cdrmix.model("cdrmix-tiny", { vocab_size = data:vocab_size() })
local trainer = cdrmix.trainer {
  model = model, data = data, name = "trainer_features",
  steps = 12, batch_size = 2, grad_accum = 3, seq_len = 16, lr = 3e-3, warmup_steps = 2,
  eval_every = 6, eval_batches = 2, checkpoint_every = 4, keep_checkpoints = 2,
  sample_every = 6, sample_prompt = "The ", sample_tokens = 12, log_every = 4,
}
local steps, evals, samples, saved = 0, 0, {}, {}
local result = trainer:run {
  on_step = function(m) steps = steps + 1; check(m.tokens == steps * 2 * 3 * 16, "tokens count micro-batches") end,
  on_eval = function(m) evals = evals + 1; check(math.abs(m.val_ppl - math.exp(m.val_loss)) < 1e-6 * m.val_ppl, "ppl") end,
  on_sample = function(s) samples[#samples + 1] = s.text end,
  on_checkpoint = function(c) saved[#saved + 1] = c.path end,
}
check(steps == 12 and evals == 2 and #samples == 2 and #saved == 3,
      string.format("callbacks: %d steps, %d evals, %d samples, %d checkpoints", steps, evals, #samples, #saved))
check(#samples[1] > 0, "a sample has text")
local ckpt = result.run_dir .. "/checkpoints/"
check(not exists(ckpt .. "step-000004/model.safetensors"), "step 4 pruned (keep_checkpoints = 2)")
check(exists(ckpt .. "step-000008/model.safetensors") and exists(ckpt .. "step-000012/model.safetensors"), "newest two kept")
check(exists(ckpt .. "latest/run_config.json"), "the run's config travels with the checkpoint")
check(not exists(ckpt .. "latest/config.json"), "config.json is left to Hugging Face configs")
check(result.checkpoint:find("step%-000012$"), "end record names the last checkpoint")
check(trainer:step() == 12, "trainer:step()")

-- A second trainer of another name is a run of its own: its own folder, records and checkpoints.
local other = cdrmix.trainer { model = model, data = data, name = "trainer_features_b", steps = 2, batch_size = 2,
                               seq_len = 16, eval_every = 0, eval_batches = 1 }:run()
check(other.run_dir ~= result.run_dir and other.run_dir:find("trainer_features_b%-%d+%-%d+"), "a distinct run folder")
check(exists(other.run_dir .. "/metrics.jsonl") and exists(other.run_dir .. "/checkpoints/latest/model.safetensors"),
      "its own records and checkpoints")
local lines = 0
for line in io.lines(other.run_dir .. "/metrics.jsonl") do
  if line:find('"event":"step"') then lines = lines + 1 end
end
check(lines == 2, "only its own step records: " .. lines)
print("trainer_features: ok")
