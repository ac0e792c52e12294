-- What a script can do to the host by accident or on purpose, short of the
-- FFI: call a userdata's __gc by hand (twice, on other values, with another
-- class's __gc), and load bytecode (LuaJIT's loader trusts it; a corrupted
-- file crashed it). Neither may crash: __gc destroys a value once, and every
-- loader takes text only.
local function check(cond, msg) if not cond then error(msg, 2) end end

local t = cdrmix.zeros({ 2 })
local tensor_gc = getmetatable(t).__gc
tensor_gc(t)
tensor_gc(t) -- a second call finds nothing to destroy
check(not pcall(function() return t:sum() end), "a destroyed tensor refuses its methods")
tensor_gc({})
tensor_gc("text")
tensor_gc(nil)
local model = cdrmix.model { vocab_size = 8, hidden_size = 16, num_layers = 1,
                             mixer = { type = "rwkv7_time_mix", head_size = 16 } }
tensor_gc(model) -- another class's value: untouched
check(model:num_parameters() > 0, "a model survives a tensor's __gc")
getmetatable(model).__gc(model)
check(not pcall(function() return model:num_parameters() end), "a destroyed model refuses its methods")
collectgarbage()
collectgarbage()

local bytecode = string.dump(function() return 1 end)
local f, err = load(bytecode)
check(f == nil and err:find("wrong mode"), "load refuses bytecode: " .. tostring(err))
f, err = loadstring(bytecode)
check(f == nil and err:find("wrong mode"), "loadstring refuses bytecode: " .. tostring(err))
f, err = load(bytecode, "chunk", "b")
check(f == nil, "load refuses bytecode even when asked for it")
local path = os.tmpname()
local out = io.open(path, "wb")
out:write("\27LJ\2\0\0garbage")
out:close()
f, err = loadfile(path)
check(f == nil and err:find("wrong mode"), "loadfile refuses bytecode: " .. tostring(err))
check(not pcall(dofile, path), "dofile refuses bytecode")
os.remove(path)
check(load("return 41 + 1")() == 42, "text still loads")
-- A class's metatable on a foreign userdata (debug.setmetatable) is not that class.
local fake = newproxy(false)
debug.setmetatable(fake, getmetatable(cdrmix.zeros(1)))
local ok_fake, fake_err = pcall(function() return fake:sum() end)
check(not ok_fake and tostring(fake_err):find("cdrmix.Tensor expected"), "a fake tensor is refused: " .. tostring(fake_err))
-- The registry's runtime entry, replaced, is refused rather than followed.
local registry = debug.getregistry()
local saved = registry["cdrmix.runtime"]
registry["cdrmix.runtime"] = newproxy(false)
local ok_rt, rt_err = pcall(cdrmix.config, { a = 1 })
registry["cdrmix.runtime"] = saved
check(not ok_rt and tostring(rt_err):find("replaced the registry"), "a replaced runtime entry is refused: " .. tostring(rt_err))
print("hostile_lua: ok")
