-- Tensors round-trip between Lua and LibTorch: creation, arithmetic, shapes, autograd.
local function check(cond, msg) if not cond then error(msg, 2) end end
local function near(a, b, tol) return math.abs(a - b) <= (tol or 1e-6) end

local t = cdrmix.tensor({{1, 2, 3}, {4, 5, 6}})
check(tostring(t):find("^cdrmix.Tensor%(Float, shape %[2, 3%]%)"), "tostring: " .. tostring(t))
local shape = t:shape()
check(#shape == 2 and shape[1] == 2 and shape[2] == 3, "shape")
check(t:size(2) == 3 and t:dim() == 2 and t:numel() == 6 and #t == 2, "size/dim/numel/len")

local list = t:tolist()
check(list[2][3] == 6 and list[1][1] == 1, "tolist round trip")
check(near((t + 1):sum():item(), 27), "add scalar")
check(near((t * t):sum():item(), 91), "elementwise mul")
check(near((2 - t):sum():item(), -9), "number on the left")
check(near((t / 2):max():item(), 3), "div and max")
check(near((-t):min():item(), -6), "unary minus")
check(near(t:matmul(t:t()):tolist()[1][2], 32), "matmul")
check(near(t:view({3, 2}):tolist()[3][2], 6), "view")
check(near(cdrmix.zeros({2, 2}):sum():item() + cdrmix.ones(3):sum():item(), 3), "zeros/ones")
check(cdrmix.arange(5):tolist()[5] == 4, "arange")

-- autograd: d/dx sum(x^2) = 2x
local x = cdrmix.tensor({1, 2, 3}, "float64"):requires_grad(true)
local y = (x * x):sum()
y:backward()
local g = x:grad():tolist()
check(near(g[1], 2) and near(g[2], 4) and near(g[3], 6), "gradient")

-- C++ errors surface as Lua errors with this file's line
local ok, err = pcall(function()
  local v = cdrmix.tensor({1, 2}):item() -- not a tail call: tail calls drop the caller's line
  return v
end)
check(not ok and err:find("tensors.lua:%d+:"), "error carries file:line: " .. tostring(err))

cdrmix.manual_seed(3)
local a = cdrmix.randn({4}):tolist()
cdrmix.manual_seed(3)
local b = cdrmix.randn({4}):tolist()
check(a[1] == b[1] and a[4] == b[4], "manual_seed")
print("tensors: ok")
