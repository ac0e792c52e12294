-- A dense RWKV-7 model trained for a few steps, for the import test: its
-- checkpoint's weights carry RWKV-LM's names, as a published model's do.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
  train = { steps = 5, batch_size = 4, seq_len = 32, lr = 4e-3, warmup_steps = 1, eval_every = 0,
            eval_batches = 1, checkpoint_every = 0, log_every = 1 },
}
local data = cdrmix.data(cfg.data)
local model = cdrmix.model({ name = "dense-tiny", hidden_size = 64, num_layers = 2,
                             mixer = { type = "rwkv7_time_mix", head_size = 32 } },
                           { vocab_size = data:vocab_size() })
local t = cfg.train
t.model, t.data, t.name = model, data, "dense_tiny"
cdrmix.trainer(t):run()
