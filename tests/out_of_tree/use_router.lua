-- Names the out-of-tree "cosine" router from Lua and trains with it.
local cfg = cdrmix.config { data = { type = "text", path = "data/fortunes.txt" }, steps = 20 }
local found
for _, p in ipairs(cdrmix.plugins()) do
  if p.kind == "router" and p.name == "cosine" then found = p end
end
if not found then error("the cosine router plugin was not loaded") end
print("cosine router from " .. found.file)

local data = cdrmix.data(cfg.data)
local spec = cdrmix.yaml("configs/models/cdrmix-tiny.yaml")
spec.router = { type = "cosine", temperature = 0.5 }
spec.vocab_size = data:vocab_size()
local model = cdrmix.model(spec)
local first
local result = cdrmix.trainer { model = model, data = data, steps = cfg.steps, batch_size = 8, seq_len = 32, lr = 4e-3,
                                warmup_steps = 2, eval_every = 0, eval_batches = 2, name = "cosine" }:run {
  on_step = function(m) first = first or m.loss end,
}
if not (result.train_loss < first) then error("loss did not fall with the cosine router") end
print(string.format("out-of-tree router: ok (loss %.3f -> %.3f)", first, result.train_loss))
