-- Fine-tuning in stages: pre-training on plain text, then instruction tuning,
-- tool calling and reasoning on the synthetic chat corpus (docs/finetuning.md).
-- Each stage starts from the previous stage's last checkpoint (weights only: a
-- fresh optimiser and schedule) with its own data, learning rate and steps.
-- After every stage (so before the next), tool-call validity and answer
-- accuracy are measured on held-out conversations of every kind.
--
--   scripts/prepare-chat.sh                      -- data/chat/{instruct,tools,reasoning}_{train,test}.jsonl
--   cdrmix run experiments/finetune.lua          -- a few minutes on 2 cores
--   cdrmix run experiments/finetune.lua stages.tools.steps=400 eval.limit=100
--   cdrmix run experiments/finetune.lua replay=true   -- each stage also on the earlier stages' data
--   cdrmix run experiments/finetune.lua packing=bucket -- chat rows start at conversations (docs/data.md#chat)
local cfg = cdrmix.config {
  chat_dir = "data/chat",
  pretrain = { type = "text", path = "../data/fortunes.txt", tokenizer = "byte", val_fraction = 0.05 },
  model = cdrmix.yaml("cdrmix-tiny"),
  train = { batch_size = 8, seq_len = 256, warmup_steps = 20, eval_every = 0, eval_batches = 4, log_every = 25,
            checkpoint_every = 0, keep_checkpoints = 1 },
  -- In order; `data` names the chat files <chat_dir>/<data>_train.jsonl (nil: the pre-training text).
  stages = {
    pretrain = { order = 1, steps = 200, lr = 3e-3 },
    instruct = { order = 2, steps = 150, lr = 2e-3, data = "instruct" },
    tools = { order = 3, steps = 250, lr = 2e-3, data = "tools" },
    reasoning = { order = 4, steps = 150, lr = 1e-3, data = "reasoning" },
  },
  eval = { limit = 40, max_tokens = 128 },  -- per reply: a tool call is some 80 byte tokens
  -- true: each chat stage also trains on the earlier chat stages' files (one corpus), against forgetting
  replay = false,
  packing = "window", -- the chat sources' packing: window or bucket (its default buckets, 64, 128 and 256)
}

local function file(name) return cfg.chat_dir .. "/" .. name end
local kinds = { "instruct", "tools", "reasoning" }
for _, kind in ipairs(kinds) do
  for _, part in ipairs { "train", "test" } do
    local path = file(kind .. "_" .. part .. ".jsonl")
    local f = io.open(path)
    if not f then error(path .. " not found: run scripts/prepare-chat.sh (or set chat_dir=...)", 0) end
    f:close()
  end
end

local function chat_data(kinds_so_far)
  local paths = {}
  for _, kind in ipairs(kinds_so_far) do paths[#paths + 1] = file(kind .. "_train.jsonl") end
  return cdrmix.data { type = "chat", path = paths, tokenizer = "byte", val_fraction = 0.05, packing = cfg.packing }
end

-- Tool-call validity and answer accuracy on every kind's held-out conversations.
local function measure(model, tokenizer, label, rows)
  for _, kind in ipairs(kinds) do
    local r = model:eval_chat(tokenizer, file(kind .. "_test.jsonl"), cfg.eval)
    rows[#rows + 1] = { label = label, kind = kind, r = r }
    print(string.format("%-18s %-10s tool-call validity %s  answer accuracy %.3f (%d of %d)", label, kind,
                        r.expect_calls > 0 and string.format("%.3f", r.tool_call_validity) or "  -  ",
                        r.answer_accuracy, r.correct_answers, r.conversations))
    cdrmix.log { measure = "chat", after = label, kind = kind, tool_call_validity = r.tool_call_validity,
                 answer_accuracy = r.answer_accuracy, conversations = r.conversations }
  end
end

local order = {}
for name, stage in pairs(cfg.stages) do order[#order + 1] = { name = name, stage = stage } end
table.sort(order, function(a, b) return a.stage.order < b.stage.order end)

local rows, checkpoint, previous, seen = {}, nil, nil, {}
for _, entry in ipairs(order) do
  local name, stage = entry.name, entry.stage
  if stage.data then seen[#seen + 1] = stage.data end
  local data = stage.data and chat_data(cfg.replay and seen or { stage.data }) or cdrmix.data(cfg.pretrain)
  local model
  if checkpoint then
    model = cdrmix.load(checkpoint)
    -- The stage continues from the previous stage's weights: the same loss on
    -- the previous stage's val split, to the last digit.
    local again = model:evaluate(previous.data, previous.eval)
    if again.loss ~= previous.loss then
      error(string.format("stage %s did not start from %s: val loss %.9g, the previous stage ended at %.9g", name,
                          checkpoint, again.loss, previous.loss), 0)
    end
    print(string.format("stage %s starts from %s (previous val loss %.4f, reproduced)", name, checkpoint, again.loss))
  else
    model = cdrmix.model(cfg.model, { vocab_size = data:vocab_size() })
  end

  local t = {}
  for k, v in pairs(cfg.train) do t[k] = v end
  t.model, t.data, t.name, t.steps, t.lr, t.min_lr = model, data, "finetune-" .. name, stage.steps, stage.lr, stage.lr / 10
  t.warmup_steps = math.min(t.warmup_steps, math.max(1, math.floor(stage.steps / 10)))
  local result = cdrmix.trainer(t):run()
  checkpoint = result.run_dir .. "/checkpoints/latest"
  local eval = { batch_size = t.batch_size, seq_len = t.seq_len, batches = t.eval_batches }
  previous = { data = data, eval = eval, loss = model:evaluate(data, eval).loss }
  print(string.format("stage %s: %d steps at lr %g, train loss %.4f, val loss %.4f -> %s", name, stage.steps, stage.lr,
                      result.train_loss, previous.loss, checkpoint))
  measure(model, data, "after " .. name, rows)
end

print("\nstage              kind       validity  accuracy")
for _, row in ipairs(rows) do
  print(string.format("%-18s %-10s %-9s %.3f", row.label, row.kind,
                      row.r.expect_calls > 0 and string.format("%.3f", row.r.tool_call_validity) or "-",
                      row.r.answer_accuracy))
end
