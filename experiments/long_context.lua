-- Long-context associative recall: each sequence opens with key/value pairs
-- ("K3B7..."), runs on with random filler for hundreds of tokens, and ends
-- with queries ("?B7"): the model must recall a value it saw at the start.
-- An RWKV-7 model carries that in its fixed-size state. Prints the loss and
-- the accuracy of greedy answers to held-out queries (chance is 10%).
--
--   cdrmix run experiments/long_context.lua                        -- a few minutes on 2 cores
--   cdrmix run experiments/long_context.lua train.steps=5 eval.examples=4   -- smoke test
--   cdrmix run experiments/long_context.lua train.seq_len=1024 data.num_pairs=16 train.steps=2000
local cfg = cdrmix.config {
  -- Many queries a sequence: the answers are the only learnable targets besides the layout.
  data = { type = "synthetic", task = "recall", num_pairs = 4, queries = 16, seed = 7, val_size = 64 },
  model = cdrmix.yaml("cdrmix-tiny"),
  train = {
    steps = 200,
    batch_size = 8,
    seq_len = 256,
    lr = 3e-3,
    min_lr = 3e-4,
    warmup_steps = 20,
    eval_every = 50,
    eval_batches = 2,
    log_every = 10,
  },
  eval = { examples = 16 },
}

local data = cdrmix.data(cfg.data)
print(data)
local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
print(model)

local train = cfg.train
train.model, train.data, train.name = model, data, "long_context"
local result = cdrmix.trainer(train):run()

-- Held-out examples: every query's value, answered greedily after the text before it.
local T, n = cfg.train.seq_len, cfg.eval.examples
local queries = cfg.data.queries
local text = data:decode(data:batch("val", n, T))  -- one character per token: rows are T + 1 characters
local correct, total = 0, 0
for i = 0, n - 1 do
  local row = text:sub(i * (T + 1) + 1, (i + 1) * (T + 1))
  for q = 1, queries do
    local at = #row - 3 * (queries - q)     -- the value of query q
    local answer = model:generate(data, row:sub(1, at - 1), { max_tokens = 1, temperature = 0 })
    if answer == row:sub(at, at) then correct = correct + 1 end
    total = total + 1
  end
end

print(string.format("long_context: seq_len %d, %d pairs, train loss %.4f, val loss %.4f, %.0f tokens/s",
                    T, cfg.data.num_pairs, result.train_loss, result.val_loss, result.tokens_per_s))
print(string.format("recall accuracy %.1f%% (%d of %d held-out queries; chance 10%%)", 100 * correct / total,
                    correct, total))
