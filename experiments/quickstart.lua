-- The default experiment: a small RWKV-7 + MoE language model trained on the
-- text of Debian's fortune cookie databases, then a generated sample.
--
--   cdrmix run experiments/quickstart.lua                 -- about five minutes on 2 cores
--   cdrmix run experiments/quickstart.lua train.steps=50  -- any key below can be overridden
local cfg = cdrmix.config {
  data = {
    type = "text",
    path = "../data/fortunes.txt",      -- made by scripts/prepare-corpus.sh
    tokenizer = "char",
    val_fraction = 0.05,
  },
  model = cdrmix.yaml("cdrmix-small"),
  train = {
    steps = 600,
    batch_size = 16,
    seq_len = 128,
    lr = 3e-3,
    min_lr = 3e-4,
    warmup_steps = 50,
    eval_every = 100,
    eval_batches = 16,
    log_every = 10,
  },
  sample = { prompt = "The ", max_tokens = 300, temperature = 0.8, top_k = 40 },
}

local data = cdrmix.data(cfg.data)
print(data)
local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
print(model)

local train = cfg.train
train.model, train.data, train.name = model, data, "quickstart"
local result = cdrmix.trainer(train):run()

print(string.format("final train loss %.4f, val loss %.4f, %.0f tokens/s", result.train_loss, result.val_loss,
                    result.tokens_per_s))
print("checkpoints in " .. result.run_dir .. "/checkpoints/latest")
print("\n--- sample ---")
io.write(cfg.sample.prompt)
model:generate(data, cfg.sample.prompt, {
  max_tokens = cfg.sample.max_tokens,
  temperature = cfg.sample.temperature,
  top_k = cfg.sample.top_k,
  seed = 7,
  on_text = function(piece) io.write(piece); io.flush() end,
})
print("\n--------------")
