-- Router comparison: the same RWKV-7 + MoE model trained once per router, on
-- the same data, steps and seed; a summary table at the end.
--
--   cdrmix run experiments/routers.lua                            -- every router, 300 steps each
--   cdrmix run experiments/routers.lua routers=topk,hash train.steps=5   -- smoke run
--
-- switch is a top-1 router (the model runs it with top_k = 1, half the active
-- expert compute of the others); expert_choice balances by construction, aux_free
-- with a bias instead of a loss, hash and sinkhorn without a learned balance loss;
-- lua is modules/topk_router.lua, a page of Lua that decides as topk does given
-- the same gate (tests/unit/test_lua_modules.cpp); its gate is drawn
-- differently, so its curve is its own; its tokens/s show what Lua costs.
local cfg = cdrmix.config {
  data = { type = "text", path = "../data/fortunes.txt", tokenizer = "char", val_fraction = 0.05 },
  model = cdrmix.yaml("cdrmix-tiny"),
  routers = "topk,switch,expert_choice,aux_free,hash,sinkhorn,lua",
  train = { steps = 300, batch_size = 16, seq_len = 64, lr = 3e-3, min_lr = 3e-4, warmup_steps = 30,
            eval_every = 100, eval_batches = 8, log_every = 20, seed = 1 },
}

-- Settings per router beyond the model's defaults.
local router_configs = {
  topk = { router = { type = "topk", load_balance_alpha = 0.01, z_loss = 0.001 } },
  switch = { router = { type = "switch", load_balance_alpha = 0.01, z_loss = 0.001 }, top_k = 1 },
  expert_choice = { router = { type = "expert_choice", capacity_factor = 1.0 } },
  aux_free = { router = { type = "aux_free" } },
  hash = { router = { type = "hash" } },
  sinkhorn = { router = { type = "sinkhorn" } },
  -- relative to this script's folder
  lua = { router = { type = "lua", file = "modules/topk_router.lua", options = { load_balance_alpha = 0.01, z_loss = 0.001 } } },
}

local data = cdrmix.data(cfg.data)
cdrmix.log { experiment = "routers", routers = cfg.routers } -- the run folder is named after this script

local function model_for(name)
  local spec = {}
  for k, v in pairs(cfg.model) do spec[k] = v end
  for k, v in pairs(router_configs[name]) do spec[k] = v end
  spec.vocab_size = data:vocab_size()
  cdrmix.manual_seed(cfg.train.seed) -- every router's model is built from the same seed
  return cdrmix.model(spec)
end

local function mean_over_layers(moe, key)
  local sum = 0
  for _, layer in ipairs(moe) do sum = sum + layer[key] end
  return sum / #moe
end

local rows = {}
for name in cfg.routers:gmatch("[^,%s]+") do
  if not router_configs[name] then error("unknown router '" .. name .. "' in routers=" .. cfg.routers, 0) end
  local model = model_for(name)
  local t = {}
  for k, v in pairs(cfg.train) do t[k] = v end
  t.model, t.data, t.name = model, data, name
  local last
  local result = cdrmix.trainer(t):run { on_step = function(m) last = m end }
  rows[#rows + 1] = {
    router = name, k = router_configs[name].top_k or cfg.model.top_k,
    train = result.train_loss, val = result.val_loss,
    load_entropy = mean_over_layers(last.moe, "load_entropy"),
    dead = mean_over_layers(last.moe, "dead_experts"),
    tps = result.tokens_per_s,
  }
end

print(string.format("\n%d steps of %d x %d tokens each; load entropy is at most ln(%d) = %.3f (perfect balance)",
                    cfg.train.steps, cfg.train.batch_size, cfg.train.seq_len, cfg.model.num_experts,
                    math.log(cfg.model.num_experts)))
print(string.format("%-14s %2s %10s %9s %8s %12s %5s %9s", "router", "k", "train loss", "val loss", "val ppl",
                    "load entropy", "dead", "tokens/s"))
for _, r in ipairs(rows) do
  print(string.format("%-14s %2d %10.4f %9.4f %8.3f %12.3f %5.2f %9.0f", r.router, r.k, r.train, r.val,
                      math.exp(r.val), r.load_entropy, r.dead, r.tps))
end
