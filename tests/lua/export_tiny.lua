-- For the export checks (tests/cli/export_*.sh): a tiny RWKV-7 model trained
-- for a few steps (dense; with model.moe_every=2 every second FFN is an MoE
-- layer), and, when `logits` names a file, CDRmix's logits for `text` from
-- the trained weights, written there as JSON {"tokens": [...], "logits": [[...], ...]}.
local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
  model = { hidden_size = 128, num_layers = 2, seq_length = 32, moe_every = 0, num_experts = 4,
            mixer = { type = "rwkv7_time_mix", head_size = 64 }, ffn = { type = "rwkv_channel_mix", expansion = 2 } },
  train = { steps = 20, batch_size = 4, seq_len = 32, lr = 4e-3, warmup_steps = 2, eval_every = 10,
            eval_batches = 2, log_every = 10 },
  name = "export_tiny",
  text = "The quick brown fox jumps over the lazy dog.",
  logits = "",
}

local data = cdrmix.data(cfg.data)
local model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size(), name = cfg.name })
local t = cfg.train
t.model, t.data, t.name = model, data, cfg.name
local result = cdrmix.trainer(t):run()

if cfg.logits ~= "" then
  model:eval()
  local ids = data:encode(cfg.text)
  local rows = model:forward(ids:view(1, ids:numel())):tolist()[1]
  local out = assert(io.open(cfg.logits, "w"))
  local tokens = {}
  for i, id in ipairs(ids:tolist()) do tokens[i] = string.format("%d", id) end
  out:write('{"tokens": [', table.concat(tokens, ", "), '], "logits": [')
  for i, row in ipairs(rows) do
    local cells = {}
    for j, x in ipairs(row) do cells[j] = string.format("%.9g", x) end
    out:write(i > 1 and ", " or "", "[", table.concat(cells, ", "), "]")
  end
  out:write("]}\n")
  out:close()
end
print("run_dir " .. result.run_dir)
