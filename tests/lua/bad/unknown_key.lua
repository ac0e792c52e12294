-- A typo in a router setting.
local model = cdrmix.model { vocab_size = 10, hidden_size = 64, num_layers = 1, moe_every = 1,
  router = { type = "topk", top_kk = 2 } }
