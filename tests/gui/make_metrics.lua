-- Writes a synthetic run directory (metrics.jsonl only) with the records the
-- trainer publishes: for dashboard tests and for timing frames on long runs.
--   cdrmix run tests/gui/make_metrics.lua out.dir=/tmp/run out.steps=100000 out.shape=1
-- shape 1: a falling loss, one dead expert; shape 2: a plateau, balanced experts.
local cfg = cdrmix.config { out = { dir = "", steps = 300, shape = 1, experts = 8 } }
local o = cfg.out
assert(o.dir ~= "", "set out.dir=PATH")
os.execute("mkdir -p '" .. o.dir .. "'")
local f = assert(io.open(o.dir .. "/metrics.jsonl", "w"))
local t0, E = 1763800000, o.experts
local rnd = 12345
local function noise() -- a small LCG: the same file on every machine
  rnd = (rnd * 1103515245 + 12345) % 2147483648
  return rnd / 2147483648 - 0.5
end
f:write(string.format('{"event":"run","dir":"%s","time":%.3f}\n', o.dir, t0))
for s = 1, o.steps do
  local frac = s / o.steps
  local loss = o.shape == 1 and (1.4 + 3.0 * math.exp(-6 * frac)) or (3.2 - 0.3 * frac)
  loss = loss * (1 + 0.08 * noise())
  local moe = {}
  for _, layer in ipairs({1, 3}) do
    local counts = {}
    for e = 1, E do
      local c = 256 + 120 * noise()
      if o.shape == 1 and layer == 3 and e == 2 then c = 0 end
      if o.shape == 1 and e == 1 then c = c * (2 + frac) end
      counts[e] = string.format("%d", math.floor(c))
    end
    moe[#moe + 1] = string.format(
      '{"layer":%d,"tokens_per_expert":[%s],"token_entropy":%.4f,"load_entropy":%.4f,"dropped_tokens":%d,' ..
      '"dead_experts":%d,"load_cv":%.4f,"losses":{"load_balance":%.5f,"z_loss":%.5f}}',
      layer, table.concat(counts, ","), 0.9 - 0.5 * frac + 0.02 * noise(), 0.95 + 0.03 * noise(),
      math.floor(math.max(0, 20 * noise())), (o.shape == 1 and layer == 3) and 1 or 0, 0.3 + 0.1 * noise(),
      0.011 + 0.001 * noise(), 0.002 + 0.0005 * noise())
  end
  local line = string.format(
    '{"event":"step","step":%d,"total_steps":%d,"loss":%.5f,"aux_loss":%.5f,"lr":%.6g,"grad_norm":%.4f,' ..
    '"step_time_s":0.5,"tokens_per_s":%.1f,"elapsed_s":%.2f,"eta_s":%.2f,"rss_mb":%.1f,"moe":[%s],"time":%.3f}',
    s, o.steps, loss, 0.026, 3e-3 * (0.55 + 0.45 * math.cos(math.pi * frac)), 0.8 + 0.3 * noise(),
    4000 + 300 * noise(), s * 0.5, (o.steps - s) * 0.5, 250 + 10 * frac, table.concat(moe, ","), t0 + s * 0.5)
  f:write(line, "\n")
  if s % 100 == 0 then
    f:write(string.format('{"event":"eval","step":%d,"val_loss":%.5f,"val_ppl":1,"time":%.3f}\n', s, loss * 1.03,
                          t0 + s * 0.5))
  end
end
f:close()
