-- Mamba-1, Mamba-2 and Mamba-3 in Oxidizr's hybrid (configs/models/oxidizr-nano-mamba1.yaml):
-- the same layers, latent attention and MoE, with each mixer in turn on the mamba_layers
-- (the preset's mamba keys are ones all three take), trained for the same steps on the
-- same data; prints each one's tokens/s and losses.
--
--   cdrmix run experiments/mamba_hybrid.lua                     -- the preset's full width
--   cdrmix run experiments/mamba_hybrid.lua model.hidden_size=128 train.steps=10
local cfg = cdrmix.config {
  data = { type = "text", path = "../data/fortunes.txt", tokenizer = "char", val_fraction = 0.05 },
  model = cdrmix.yaml("oxidizr-nano-mamba1"),
  mixers = { "mamba1", "mamba2", "mamba3" },
  train = {
    steps = 20,
    batch_size = 8,
    seq_len = 128,
    lr = 1e-3,
    warmup_steps = 5,
    eval_every = 20,
    eval_batches = 4,
    log_every = 5,
    checkpoint_every = 0,
  },
}

local data = cdrmix.data(cfg.data)
for _, mixer in ipairs(cfg.mixers) do
  cfg.model.mamba.type = mixer
  local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
  local train = cfg.train
  train.model, train.data, train.name = model, data, "mamba_hybrid-" .. mixer
  local result = cdrmix.trainer(train):run()
  print(string.format("%s: %.0f tokens/s, final train loss %.4f, val loss %.4f", mixer, result.tokens_per_s,
                      result.train_loss, result.val_loss))
end
