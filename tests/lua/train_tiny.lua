-- End to end: a tiny RWKV-7 + MoE model trained for a few dozen steps from a
-- Lua script lowers its loss, writes metrics.jsonl and a checkpoint.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
  train = { steps = 40, batch_size = 8, seq_len = 32, lr = 4e-3, warmup_steps = 5, eval_every = 20,
            eval_batches = 4, log_every = 10 },
}
local function check(cond, msg) if not cond then error(msg, 2) end end

local data = cdrmix.data(cfg.data)
local model = cdrmix.model("cdrmix-tiny", { vocab_size = data:vocab_size() })

local first, steps, evals = nil, 0, 0
local t = cfg.train
t.model, t.data, t.name = model, data, "train_tiny"
local result = cdrmix.trainer(t):run {
  on_step = function(m)
    first = first or m.loss
    steps = steps + 1
    -- Routing statistics on the logged steps (the first, every log_every-th, the last) only.
    local logged = m.step == 1 or m.step % t.log_every == 0 or m.step == m.total_steps
    if logged then
      check(m.moe and #m.moe == 1 and #m.moe[1].tokens_per_expert == 4, "router statistics on a logged step")
    else
      check(m.moe == nil, "no router statistics on step " .. m.step)
    end
  end,
  on_eval = function(m) evals = evals + 1 end,
}
check(steps == 40 and evals == 2, "callbacks: " .. steps .. " steps, " .. evals .. " evals")
check(result.train_loss < first - 0.5, string.format("loss fell from %.3f to %.3f", first, result.train_loss))
check(result.val_loss > 0 and result.val_loss < first, "val loss " .. result.val_loss)

local function lines(path)
  local n, f = 0, io.open(path)
  check(f, "missing " .. path)
  for line in f:lines() do n = n + 1 end
  f:close()
  return n
end
check(lines(result.run_dir .. "/metrics.jsonl") >= 40, "metrics.jsonl has a line per step")
check(io.open(result.run_dir .. "/checkpoints/latest/model.safetensors"), "checkpoint written")
check(io.open(result.run_dir .. "/config.json"), "resolved config written")
check(io.open(result.run_dir .. "/plugins.json"), "plugin list written")

local text = model:generate(data, "The ", { max_tokens = 20, temperature = 0 })
check(#text > 0, "generation")
print(string.format("train_tiny: ok (loss %.3f -> %.3f, val %.3f)", first, result.train_loss, result.val_loss))
