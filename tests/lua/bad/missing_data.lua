-- The data file does not exist.
local cfg = cdrmix.config { path = "no/such/corpus.txt" }
local data = cdrmix.data { type = "text", path = cfg.path }
