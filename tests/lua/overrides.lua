-- key=value overrides from the command line reach cdrmix.config with the types
-- of the values they replace. Run as: overrides.lua train.steps=7 train.flag=true name=abc
local cfg = cdrmix.config {
  name = "default",
  train = { steps = 100, flag = false, lr = 1e-3 },
  model = { hidden = 64 },
}
local function check(cond, msg) if not cond then error(msg, 2) end end
check(cfg.train.steps == 7 and type(cfg.train.steps) == "number", "number override")
check(cfg.train.flag == true, "boolean override")
check(cfg.name == "abc", "string override")
check(cfg.train.lr == 1e-3 and cfg.model.hidden == 64, "untouched defaults")
check(arg[0]:find("overrides.lua$") and #arg == 3, "arg table")
print("overrides: ok")
