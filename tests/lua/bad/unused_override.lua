-- A command-line override that adds a key nothing reads (a typo of 'hidden').
local cfg = cdrmix.config { model = { hidden = 64 } }
print(cfg.model.hidden)
