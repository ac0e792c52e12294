-- A small run that writes a record every step and a checkpoint every
-- train.checkpoint_every steps: tests/cli/disk_full.sh runs it with a cap on
-- the size of any file it writes (ulimit -f), the way a full disk fails writes.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
  train = { steps = 40, batch_size = 2, seq_len = 16, lr = 4e-3, warmup_steps = 2, eval_every = 0,
            log_every = 1, checkpoint_every = 5, name = "disk_full" },
}
local data = cdrmix.data(cfg.data)
local model = cdrmix.model({ vocab_size = data:vocab_size(), hidden_size = 32, num_layers = 1,
                             mixer = { type = "rwkv7_time_mix", head_size = 16 },
                             ffn = { type = "rwkv_channel_mix", expansion = 2 } })
local t = cfg.train
t.model, t.data = model, data
local result = cdrmix.trainer(t):run()
print(string.format("disk_full: %d steps, run %s", result.step, result.run_dir))
