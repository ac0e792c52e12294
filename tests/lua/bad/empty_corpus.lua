-- The corpus file exists but is empty.
local data = cdrmix.data { type = "text", path = "tests/lua/bad/empty.txt" }
