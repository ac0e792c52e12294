-- A text corpus named on the command line (data.path=...), char tokens.
local cfg = cdrmix.config { data = { type = "text", path = "tests/lua/bad/latin1.txt", tokenizer = "char" } }
cdrmix.data(cfg.data)
