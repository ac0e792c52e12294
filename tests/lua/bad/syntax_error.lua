-- A Lua syntax error on line 4.
local cfg = cdrmix.config { steps = 1 }

local x = = 3
