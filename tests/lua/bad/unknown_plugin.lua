-- A model names a block type no plugin provides.
local model = cdrmix.model { vocab_size = 10, hidden_size = 32, num_layers = 1, mixer = { type = "rwkv99" } }
