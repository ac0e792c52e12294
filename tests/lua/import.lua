-- cdrmix.import from Lua: an RWKV-LM file becomes a checkpoint folder that
-- cdrmix.model and model:load read; prints the logits' sum so the caller can
-- compare it with the original model's.
local cfg = cdrmix.config { source = "", out = "", original = "" }
local function logit_sum(dir)
  local model = cdrmix.model(dir .. "/model.json")
  model:load(dir)
  return model:forward(cdrmix.tensor({ { 1, 2, 3, 4, 5, 6, 7, 8 } }, "int64")):sum():item()
end
local dir = cdrmix.import { format = "rwkv-lm", source = cfg.source, out = cfg.out, dtype = "float32" }
assert(dir:sub(-#"lua-imported") == "lua-imported", "import returned " .. dir)
local imported, original = logit_sum(dir), logit_sum(cfg.original)
print(string.format("import.lua: logit sums %.9g (imported) and %.9g (original)", imported, original))
assert(imported == original, "the imported model's logits differ from the original's")
