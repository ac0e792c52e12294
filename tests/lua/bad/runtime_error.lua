-- A runtime error on line 6, inside a function called from the main chunk.
local function helper()
  return 1
end
helper()
local y = cdrmix.no_such_function()
