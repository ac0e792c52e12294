-- The YAML preset is malformed.
local spec = cdrmix.yaml("tests/lua/bad/bad.yaml")
