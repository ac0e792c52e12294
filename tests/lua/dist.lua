-- cdrmix.dist under a launcher: every rank all-reduces and broadcasts, and the
-- results agree. Run as `cdrmix launch -n 2 run tests/lua/dist.lua` (or with
-- torchrun / Slurm variables set by hand); alone it is a group of one.
local function check(cond, msg) if not cond then error(msg, 2) end end
local d = cdrmix.dist
local rank, n = d.rank(), d.world_size()
check(rank >= 0 and rank < n and d.local_rank() >= 0, "rank " .. rank .. " of " .. n)

local t = cdrmix.tensor({rank + 1, 10 * (rank + 1)})
d.all_reduce(t)                                 -- sum over ranks: n(n+1)/2 and 10 times that
local want = n * (n + 1) / 2
check(t:tolist()[1] == want and t:tolist()[2] == 10 * want, "all_reduce sum: " .. t:tolist()[1])
local m = cdrmix.tensor({rank})
check(d.all_reduce(m, "max"):item() == n - 1, "all_reduce max")
local a = cdrmix.tensor({rank})
check(math.abs(d.all_reduce(a, "avg"):item() - (n - 1) / 2) < 1e-6, "all_reduce avg")

local b = cdrmix.tensor({rank + 7})
d.broadcast(b, n - 1)                           -- the last rank's value everywhere
check(b:item() == n + 6, "broadcast from rank " .. (n - 1))
d.barrier()
print(string.format("dist: rank %d of %d ok", rank, n))
