-- A type error inside a YAML preset loaded by the script.
local here = arg[0]:match("(.*/)") or "./"
local model = cdrmix.model(cdrmix.yaml(here .. "bad_type.yaml"), { vocab_size = 10 })
