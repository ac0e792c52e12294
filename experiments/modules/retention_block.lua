-- A token mixer written in Lua: multi-head retention (RetNet, Sun et al. 2023)
-- without its group norm. Per head h with a fixed decay g_h,
--   y_t = sum over s <= t of g_h^(t-s) (q_t . k_s) v_s,
-- computed in parallel as a decay-masked T x T product, and in streaming form
-- from the carried state S = sum over s of g_h^(last-s) k_s v_s^T.
-- Name it in a model spec: mixer = {type = "lua", file = "modules/retention_block.lua", options = {heads = 4}}
-- ctx: {hidden_size, layer, num_layers, expert}.
return function(ctx, options)
  local C = ctx.hidden_size
  local H = options.heads or 4
  assert(C % H == 0, "retention_block: hidden_size " .. C .. " is not a multiple of heads " .. H)
  local D = C / H
  local std = 1 / math.sqrt(C)
  -- Projections named like torch Linear's (q.weight, ...): matrices named *weight get weight decay.
  local function linear() return {weight = cdrmix.parameter({C, C}, {normal = std})} end
  local m = {q = linear(), k = linear(), v = linear(), o = linear()}
  -- RetNet's decays 1 - 2^(-5 - h) for h = 0 .. H-1: a buffer (saved, not trained).
  local decays = {}
  for h = 1, H do decays[h] = math.log(1 - 2 ^ (-4 - h)) end
  m.log_decay = cdrmix.tensor(decays)

  local function split_heads(x, B, T) return x:view(B, T, H, D):transpose(2, 3) end -- [B, H, T, D]

  -- x: [B, T, C]; state: nil (a whole sequence) or {S} carried between calls ({} at the start).
  function m.forward(x, state, fctx)
    local B, T = x:size(1), x:size(2)
    local q = split_heads(x:matmul(m.q.weight:t()), B, T) * D ^ -0.5
    local k = split_heads(x:matmul(m.k.weight:t()), B, T)
    local v = split_heads(x:matmul(m.v.weight:t()), B, T)
    local lg = m.log_decay:to(x:dtype()):view(H, 1, 1)
    local pos = cdrmix.arange(T):to(x:dtype())
    local gap = pos:view(T, 1) - pos:view(1, T)                    -- t - s
    local decay = (lg * gap):exp():masked_fill(gap:lt(0), 0)        -- [H, T, T], causal
    local y = (q:matmul(k:transpose(3, 4)) * decay):matmul(v)       -- [B, H, T, D]
    local next_state
    if state then
      local S = state[1] or cdrmix.zeros({B, H, D, D}, x:dtype())
      y = y + q:matmul(S) * (lg * (pos + 1):view(T, 1)):exp()       -- what came before this piece
      local to_end = (lg * (T - 1 - pos):view(T, 1)):exp()          -- g^(T-1-s)
      next_state = {S * (lg * T):exp():view(1, H, 1, 1) + (k * to_end):transpose(3, 4):matmul(v)}
    end
    return y:transpose(2, 3):reshape(B, T, C):matmul(m.o.weight:t()), next_state
  end

  return m
end
