-- docs/lua.md against the bindings: every function of the `cdrmix` module and
-- every method of every class the host binds must have a `###` entry in the
-- reference, and every entry must name something bound. Fails with one line per
-- difference.
--
--   cdrmix run tests/lua/api_reference.lua [docs=docs/lua.md] [via=registry|instances] --headless
--
-- What is bound is read from the live Lua state, not from the C++ sources:
--   * module functions and fields: a walk of the `cdrmix` table (sub-tables such
--     as cdrmix.dist are walked too; a non-function value is a field);
--   * classes: the registry (debug.getregistry()), where luaL_newmetatable keeps
--     each class's metatable under its name ("cdrmix.Tensor"; define_class also
--     sets __name to it); a class's methods are the functions of its __index
--     table or, where __index is a function (Tensor's, for t[i]), of the tables
--     among that function's upvalues; __index being a function or __newindex
--     being set means the class is indexable, which needs one entry, Class[index].
--     Metamethods (__gc, __tostring, __add, ...) need no entry.
--   * via=instances (also used when the debug library is missing): one instance
--     of each class the script knows how to make, and getmetatable on it; a
--     class it cannot make is not seen this way.
--
-- Entry headings in the reference, one per function or method:
--   ### cdrmix.name(args)          a module function (cdrmix.dist.name(args) in a sub-table)
--   ### cdrmix.name                a module field (not a function)
--   ### Class:name(args)           a method of cdrmix.Class
--   ### Class[index]               indexing (and assignment through it)
-- Any other `###` heading is reported as malformed; `##` headings are free.
local cfg = cdrmix.config { docs = "docs/lua.md", via = "registry" }

-- ---- what is bound ----

local bound = {}    -- key -> "function" | "field" | "method" | "indexing"
local function bind(key, kind) bound[key] = kind end

local function walk_module(tbl, prefix, seen)
  seen[tbl] = true
  for k, v in pairs(tbl) do
    if type(k) == "string" then
      local name = prefix .. "." .. k
      if type(v) == "function" then
        bind(name, "function")
      elseif type(v) == "table" then
        if not seen[v] then walk_module(v, name, seen) end
      else
        bind(name, "field")
      end
    end
  end
end
walk_module(cdrmix, "cdrmix", {})

-- The method names a metatable exposes (metamethods excluded).
local function methods_of(mt, class)
  local found, sources = {}, 0
  local function take(tbl)
    sources = sources + 1
    for k, v in pairs(tbl) do
      if type(k) == "string" and type(v) == "function" and not k:find("^__") then found[k] = true end
    end
  end
  local index = rawget(mt, "__index")
  if type(index) == "table" then
    take(index)
  elseif type(index) == "function" then
    if not (debug and debug.getupvalue) then
      error("cannot list the methods of " .. class .. ": its __index is a function and the debug library is missing", 0)
    end
    for i = 1, 255 do
      local name, value = debug.getupvalue(index, i)
      if name == nil then break end
      if type(value) == "table" and value ~= mt then take(value) end
    end
  end
  if sources == 0 and index ~= nil then
    error("cannot list the methods of " .. class .. ": its __index is a " .. type(index) ..
          " with no table of methods this check can find (update tests/lua/api_reference.lua)", 0)
  end
  return found, type(index) == "function" or rawget(mt, "__newindex") ~= nil
end

local function add_class(full_name, mt)
  local class = full_name:match("^cdrmix%.(.+)$")
  if not class then return end
  local methods, indexable = methods_of(mt, full_name)
  for m in pairs(methods) do bind(class .. ":" .. m, "method") end
  if indexable then bind(class .. "[]", "indexing") end
  bind(class, "class")
end

local via = cfg.via
if via == "registry" and not (debug and debug.getregistry) then
  print("api_reference: no debug library; listing classes from instances instead")
  via = "instances"
end
local classes = 0
if via == "registry" then
  for k, v in pairs(debug.getregistry()) do
    -- define_class's metatables: named "cdrmix.X" with __name == that name
    -- (the registry also holds "cdrmix.runtime", a light userdata).
    if type(k) == "string" and type(v) == "table" and rawget(v, "__name") == k then
      add_class(k, v)
      classes = classes + 1
    end
  end
elseif via == "instances" then
  local data = cdrmix.data { type = "synthetic", task = "recall", num_pairs = 2, queries = 2, seed = 1, val_size = 4 }
  local model = cdrmix.model { vocab_size = data:vocab_size(), hidden_size = 16, num_layers = 1,
                               mixer = { type = "rwkv7_time_mix", head_size = 16 } }
  local instances = {
    cdrmix.zeros({ 1 }), model, data, data:tokenizer(), cdrmix.adamw(model), cdrmix.schedule(),
    cdrmix.trainer { model = model, data = data, steps = 1, name = "api_reference" },
    cdrmix.dist.data_parallel(model),
  }
  for _, obj in ipairs(instances) do
    local mt = getmetatable(obj)
    if type(mt) ~= "table" or type(rawget(mt, "__name")) ~= "string" then
      error("an instance without a named metatable: " .. tostring(obj), 0)
    end
    add_class(mt.__name, mt)
    classes = classes + 1
  end
else
  error("via must be 'registry' or 'instances', not '" .. tostring(via) .. "'", 0)
end

-- ---- what is documented ----

local file, err = io.open(cfg.docs, "r")
if not file then error("cannot read the reference: " .. tostring(err), 0) end
local documented, order, problems = {}, {}, {}
local line_no = 0
for line in file:lines() do
  line_no = line_no + 1
  local heading = line:match("^###%s+(.-)%s*$")
  if heading and not line:find("^####") then
    local key, kind
    local path, rest = heading:match("^(cdrmix[%w_%.]*%.[%a_][%w_]*)(.*)$")
    if path then
      if rest:find("^%(.*%)$") then kind = "function"
      elseif rest == "" then kind = "field" end
      key = path
    else
      local class, method, args = heading:match("^(%u[%w_]*):([%a_][%w_]*)(.*)$")
      if class and args:find("^%(.*%)$") then
        key, kind = class .. ":" .. method, "method"
      elseif heading:find("^%u[%w_]*%[.+%]$") then
        key, kind = heading:match("^(%u[%w_]*)%[") .. "[]", "indexing"
      end
    end
    if not kind then
      problems[#problems + 1] = string.format("%s:%d: malformed entry heading '### %s' (expected cdrmix.f(args), " ..
                                              "cdrmix.field, Class:method(args) or Class[index])", cfg.docs, line_no,
                                              heading)
    elseif documented[key] then
      problems[#problems + 1] = string.format("%s:%d: '%s' has a second entry (the first is at line %d)", cfg.docs,
                                              line_no, key, documented[key].line)
    else
      documented[key] = { kind = kind, line = line_no, heading = heading }
      order[#order + 1] = key
    end
  end
end
file:close()

-- ---- the comparison ----

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local entries, bindings = 0, 0
for _, key in ipairs(sorted_keys(bound)) do
  local kind = bound[key]
  if kind ~= "class" then
    bindings = bindings + 1
    local doc = documented[key]
    local shown = kind == "indexing" and key:gsub("%[%]$", "[index]") or key
    if not doc then
      problems[#problems + 1] = "bound but not documented: " .. shown .. " (" .. kind .. ")"
    elseif doc.kind ~= kind then
      problems[#problems + 1] = string.format("%s:%d: '%s' is documented as a %s but bound as a %s", cfg.docs,
                                              doc.line, shown, doc.kind, kind)
    end
  end
end
for _, key in ipairs(order) do
  entries = entries + 1
  local doc = documented[key]
  if not bound[key] then
    local class = key:match("^(%u[%w_]*)[:%[]")
    local why = ""
    if class and not bound[class] then why = " (no class cdrmix." .. class .. " is bound)" end
    problems[#problems + 1] = string.format("documented but not bound: %s:%d: ### %s%s", cfg.docs, doc.line,
                                            doc.heading, why)
  end
end

if #problems > 0 then
  error(string.format("%s and the bindings disagree (%d differences; %d entries, %d bindings in %d classes " ..
                      "and the module, via %s):\n%s", cfg.docs, #problems, entries, bindings, classes, via,
                      table.concat(problems, "\n")), 0)
end
print(string.format("api_reference: ok: %d entries in %s match %d bindings (%d classes via %s, and the module)",
                    entries, cfg.docs, bindings, classes, via))
