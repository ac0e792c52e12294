-- A plain training run for the command-line tests (Ctrl-C, --resume, eval,
-- generate): tiny model, every train key overridable.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
  train = { steps = 20, batch_size = 4, seq_len = 32, lr = 4e-3, warmup_steps = 2, eval_every = 0,
            eval_batches = 2, checkpoint_every = 0, log_every = 1 },
}
local data = cdrmix.data(cfg.data)
local model = cdrmix.model("cdrmix-tiny", { vocab_size = data:vocab_size() })
local t = cfg.train
t.model, t.data, t.name = model, data, "interruptible"
local result = cdrmix.trainer(t):run()
print(string.format("interruptible: step %d, train loss %.4f, val loss %.4f", result.step, result.train_loss,
                    result.val_loss))
