-- The chat source's packings compared on the same file, batch by batch, with no
-- model: padding (targets past a row's end), targets with loss, and rows with
-- none, for the windows of the token stream and for rows of whole conversations
-- grouped by length (packing = "bucket"), one bucket being a random grouping.
-- The figures in docs/finetuning.md#packing come from
--   scripts/prepare-chat.sh && cdrmix run experiments/chat_packing.lua --headless
--   cdrmix run experiments/chat_packing.lua seq_len=768 fine=640,672,704,736,768 --headless
-- Padding is counted as targets equal to token 0, which only pads are under the
-- byte tokenizer (the rendered text holds no NUL byte).
local cfg = cdrmix.config {
  path = "data/chat/tools_train.jsonl",
  batch_size = 8,
  seq_len = 256,
  batches = 200,
  fine = "160,176,192,208,224,240,256", -- the finer buckets' lengths
}
local fine = {}
for n in tostring(cfg.fine):gmatch("%d+") do fine[#fine + 1] = tonumber(n) end

local function measure(data)
  local pad, kept, empty, rows, targets, lengths = 0, 0, 0, 0, 0, 0
  for _ = 1, cfg.batches do
    local batch, mask = data:batch("train", cfg.batch_size, cfg.seq_len)
    local n = mask:numel()
    pad = pad + batch:narrow(2, 2, batch:size(2) - 1):eq(0):sum():item()
    kept = kept + mask:sum():item()
    empty = empty + mask:sum(2):eq(0):sum():item()
    rows, targets, lengths = rows + batch:size(1), targets + n, lengths + batch:size(2) - 1
  end
  return { pad = pad / targets, loss = kept / targets, empty = empty / rows, length = lengths / cfg.batches,
           kept = kept / cfg.batches }
end

local function source(extra)
  local c = { type = "chat", path = cfg.path, tokenizer = "byte", val_fraction = 0.05 }
  for k, v in pairs(extra) do c[k] = v end
  return cdrmix.data(c)
end

local function list(t) return "{" .. table.concat(t, ", ") .. "}" end
local rows = {
  { "window", source { packing = "window" } },
  { "bucket " .. list { cfg.seq_len } .. " (random grouping)", source { packing = "bucket", buckets = { cfg.seq_len } } },
  { "bucket " .. list(fine), source { packing = "bucket", buckets = fine } },
}
print(string.format("%s, %d batches of %d, seq_len %d", cfg.path, cfg.batches, cfg.batch_size, cfg.seq_len))
print("| packing | mean T | padding | targets with loss | rows with no loss target | loss targets per batch |")
print("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do
  local m = measure(r[2])
  print(string.format("| %s | %.1f | %.3f | %.3f | %.3f | %.0f |", r[1], m.length, m.pad, m.loss, m.empty, m.kept))
end
