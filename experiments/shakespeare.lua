-- Character-level Shakespeare: an RWKV-7 + MoE model (cdrmix-small) trained on
-- Karpathy's tinyshakespeare (1.1 MB, 65 characters), 90/10 train/val split,
-- with periodic eval, samples and checkpoints.
--
--   cdrmix run experiments/shakespeare.lua
--   cdrmix run experiments/shakespeare.lua data.path=/elsewhere/input.txt
--   cdrmix run experiments/shakespeare.lua train.steps=3 train.eval_every=2 train.sample_every=2   -- smoke run
--   cdrmix generate runs/shakespeare-<stamp> --prompt "ROMEO:" --max-tokens 300
local cfg = cdrmix.config {
  data = { type = "text", path = "../shared/data/tinyshakespeare.txt", tokenizer = "char", val_fraction = 0.1 },
  model = cdrmix.yaml("cdrmix-small"),
  train = {
    steps = 1000, batch_size = 16, seq_len = 128,
    lr = 3e-3, min_lr = 3e-4, warmup_steps = 50,
    eval_every = 100, eval_batches = 16, log_every = 10,
    sample_every = 250, sample_prompt = "ROMEO:", sample_tokens = 200,
    checkpoint_every = 250, keep_checkpoints = 2,
  },
}

local f = io.open(cfg.data.path, "rb")
if not f then
  error("tinyshakespeare not found at '" .. cfg.data.path .. "': put the file there " ..
        "(https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt) " ..
        "or pass data.path=FILE", 0)
end
f:close()

local data = cdrmix.data(cfg.data)
print(data)
local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
print(model)

local t = cfg.train
t.model, t.data, t.name = model, data, "shakespeare"
local result = cdrmix.trainer(t):run {
  on_sample = function(s) print(string.format("\n[sample at step %d]\n%s%s\n", s.step, s.prompt, s.text)) end,
}
print(string.format("final train loss %.4f, val loss %.4f (perplexity %.2f), %.0f tokens/s", result.train_loss,
                    result.val_loss, math.exp(result.val_loss), result.tokens_per_s))
print("checkpoints in " .. result.run_dir .. "/checkpoints")
