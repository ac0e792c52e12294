-- A hand-written data-parallel loop equals one process with the ranks'
-- batches together (float64, 10 AdamW steps, losses and every parameter within
-- 1e-9), two ways: cdrmix.dist.data_parallel(model), with gradient
-- accumulation (dp:sync(false) on the first micro-batch), and plain
-- all_reduce of each gradient. Run as `cdrmix launch -n 2 run dist_hand_loop.lua`.
-- Then an MoE model whose 4 experts are split over the ranks (expert_parallel)
-- follows the same model with whole experts, gradients clipped by
-- dp:clip_grad_norm (the whole gradient's norm).
local d = cdrmix.dist
local rank, world = d.rank(), d.world_size()
local function check(cond, msg) if not cond then error(msg, 2) end end

local cfg = cdrmix.config {
  data = { type = "text", path = "data/fortunes.txt", tokenizer = "char", val_fraction = 0.1 },
}
local source = cfg.data
local mine = cdrmix.data(source) -- this rank's share: rank and world_size come from the launcher
local everything = { type = source.type, path = source.path, tokenizer = source.tokenizer,
                     val_fraction = source.val_fraction, rank = 0, world_size = 1 }
local whole = cdrmix.data(everything)

local spec = { vocab_size = mine:vocab_size(), hidden_size = 32, num_layers = 2,
               mixer = { type = "rwkv7_time_mix", head_size = 16 }, ffn = { type = "rwkv_channel_mix" } }
local B, T, steps = 2, 24, 10

local function fresh(seed)
  cdrmix.manual_seed(seed)
  local m = cdrmix.model(spec):double()
  return m, cdrmix.adamw(m, { lr = 1e-2 })
end

local function max_difference(a, b)
  local pb, worst = b:named_parameters(), 0
  for name, p in pairs(a:named_parameters()) do worst = math.max(worst, (p - pb[name]):abs():max():item()) end
  return worst
end

-- One process, B * world sequences per step (two micro-batches).
local reference, ref_opt = fresh(5)
local ref_losses = {}
for s = 1, steps do
  ref_opt:zero_grad()
  local total = 0
  for _ = 1, 2 do
    local loss = reference:loss(whole:batch("train", world * B / 2, T)) / 2
    loss:backward()
    total = total + loss:item()
  end
  ref_opt:step()
  ref_losses[s] = total
end

-- Each rank B / 2 sequences per micro-batch, two micro-batches, reduced on the
-- second. Ranks other than 0 start from other weights: data_parallel broadcasts rank 0's.
local model, opt = fresh(rank == 0 and 5 or 100 + rank)
local dp = d.data_parallel(model)
for s = 1, steps do
  opt:zero_grad()
  local total = 0
  for micro = 1, 2 do
    dp:sync(micro == 2)
    local loss = model:loss(mine:batch("train", B / 2, T)) / 2
    loss:backward()
    total = total + loss:item()
  end
  opt:step()
  local mean = d.all_reduce(cdrmix.zeros({ 1 }):double() + total, "avg"):item() -- float64 throughout
  check(math.abs(mean - ref_losses[s]) < 1e-9, string.format("data_parallel: step %d loss %.12g vs %.12g", s, mean, ref_losses[s]))
end
local worst = max_difference(model, reference)
check(worst < 1e-9, "data_parallel: parameters differ by " .. worst)

-- The same with the primitives alone: broadcast the weights, average every gradient.
local plain_source = cdrmix.data(source)
local plain, plain_opt = fresh(rank == 0 and 5 or 200 + rank)
-- ipairs: every rank must make the same collectives in the same order.
for _, p in ipairs(plain:parameters()) do d.broadcast(p:detach(), 0) end
for s = 1, steps do
  plain_opt:zero_grad()
  for _ = 1, 2 do (plain:loss(plain_source:batch("train", B / 2, T)) / 2):backward() end
  for _, p in ipairs(plain:parameters()) do d.all_reduce(p:grad(), "avg") end
  plain_opt:step()
end
local worst_plain = max_difference(plain, reference)
check(worst_plain < 1e-9, "all_reduce loop: parameters differ by " .. worst_plain)

local function moe_run(expert_parallel)
  local moe = { vocab_size = mine:vocab_size(), hidden_size = 32, num_layers = 2, moe_every = 2, num_experts = 4,
                top_k = 2, expert_parallel = expert_parallel,
                mixer = { type = "rwkv7_time_mix", head_size = 16 }, ffn = { type = "rwkv_channel_mix" } }
  cdrmix.manual_seed(7)
  local m = cdrmix.model(moe):double()
  local o = cdrmix.adamw(m, { lr = 1e-2 })
  local p = d.data_parallel(m)
  local src, norms = cdrmix.data(source), {}
  for s = 1, 4 do
    o:zero_grad()
    m:loss(src:batch("train", B, T)):backward()
    norms[s] = p:clip_grad_norm(0.5)
    o:step()
  end
  return m, norms
end
local whole_moe, whole_norms = moe_run(1)
local split_moe, split_norms = moe_run(world)
local ok_refused = pcall(cdrmix.clip_grad_norm, split_moe, 1.0)
check(world == 1 or not ok_refused, "cdrmix.clip_grad_norm refuses a model whose experts are split")
for s = 1, 4 do
  check(math.abs(split_norms[s] - whole_norms[s]) < 1e-9 * whole_norms[s],
        string.format("expert parallel: step %d gradient norm %.12g vs %.12g", s, split_norms[s], whole_norms[s]))
end
local worst_moe = max_difference(split_moe, whole_moe) -- the dense parameters and the experts this rank holds
check(worst_moe < 1e-9, "expert parallel: parameters differ by " .. worst_moe)
print(string.format("dist_hand_loop: rank %d of %d ok (parameters within %.1e and %.1e; split experts %.1e)", rank,
                    world, worst, worst_plain, worst_moe))
