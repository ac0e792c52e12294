// cdrmix.dist: the collectives a hand-written loop needs to do what a
// data-parallel trainer does, over the process group the launcher's
// environment describes (cdrmix launch, torchrun, srun, mpirun; a group of one
// otherwise, where every call is a no-op).
//   cdrmix.dist.rank(), world_size(), local_rank()
//   cdrmix.dist.barrier()
//   cdrmix.dist.all_reduce(t [, "sum" | "avg" | "max" | "min"])   in place; returns t
//   cdrmix.dist.broadcast(t [, src = 0])                          in place; returns t
//   cdrmix.dist.data_parallel(model) -> dp   rank 0's parameters everywhere, then every
//       backward averages the gradients over ranks as the stock trainer does
//       (buckets overlapping backward; experts split over ranks reduced over
//       their replicas, dist/model_sync.hpp);
//       dp:sync(false) for the non-final micro-batches of an accumulation window,
//       dp:sync(true) before the last; dp:comm_time() the last reduction's wait (s);
//       dp:clip_grad_norm(max_norm) the whole gradient's norm (every expert once), clipped when max_norm > 0
// Tensors must be CPU tensors (Gloo); a collective waits at most CDRMIX_DIST_TIMEOUT seconds.
// Each call first checks that every rank makes the same call (one small
// all-reduce): ranks that disagree fail with one line instead of corrupting data.
#include "dist/model_sync.hpp"
#include "dist/process_group.hpp"
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "lua/wrap_model.hpp"
#include "lua/wrap_tensor.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

namespace cdrmix::lua {

namespace {

// rank, world size and local rank come from the environment: no need to join for them.
int l_rank(lua_State *L) {
    lua_pushinteger(L, Runtime::from(L).dist_env().rank);
    return 1;
}

int l_world_size(lua_State *L) {
    lua_pushinteger(L, Runtime::from(L).dist_env().world_size);
    return 1;
}

int l_local_rank(lua_State *L) {
    lua_pushinteger(L, Runtime::from(L).dist_env().local_rank);
    return 1;
}

// Gloo matches collectives by order alone, and ranks that call different ones
// (a loop over pairs(), whose order differs between processes) make it abort
// the process. So each call first checks, with one small all-reduce, that
// every rank makes the same call, and fails with one line otherwise.
void same_call_everywhere(ProcessGroup &group, const std::string &call) {
    if (group.world_size() == 1) return;
    const auto signature = static_cast<int64_t>(std::hash<std::string>{}(call));
    torch::Tensor t = torch::tensor({signature, -signature}, torch::kInt64);
    group.all_reduce(t, ReduceOp::Max);
    if (t[0].item<int64_t>() != signature || t[1].item<int64_t>() != -signature)
        throw Error("cdrmix.dist: the ranks made different calls here (rank " + std::to_string(group.rank()) + ": " +
                    call + "); every rank must make the same collective calls in the same order "
                           "(iterate model:parameters() with ipairs, not pairs)");
}

std::string describe(const torch::Tensor &t) {
    std::string shape;
    for (int64_t d : t.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    return std::string(c10::toString(t.scalar_type())) + "[" + shape + "]";
}

int l_barrier(lua_State *L) {
    ProcessGroup &group = Runtime::from(L).dist();
    same_call_everywhere(group, "barrier()");
    group.barrier();
    return 0;
}

// The tensor at idx, checked for a collective: CPU and contiguous (written in place).
torch::Tensor &collective_tensor(lua_State *L, int idx) {
    torch::Tensor &t = check_tensor(L, idx);
    if (!t.device().is_cpu()) throw Error("cdrmix.dist: tensors must be on the CPU (the Gloo backend)");
    if (!t.is_contiguous()) throw Error("cdrmix.dist: the tensor must be contiguous (use :contiguous())");
    return t;
}

int l_all_reduce(lua_State *L) {
    torch::Tensor &t = collective_tensor(L, 1);
    const std::string op_name = luaL_optstring(L, 2, "sum");
    const ReduceOp op = reduce_op_from(op_name);
    {
        torch::NoGradGuard no_grad;
        ProcessGroup &group = Runtime::from(L).dist();
        same_call_everywhere(group, "all_reduce(" + describe(t) + ", " + op_name + ")");
        group.all_reduce(t, op);
    }
    lua_settop(L, 1);
    return 1;
}

int l_broadcast(lua_State *L) {
    torch::Tensor &t = collective_tensor(L, 1);
    const int src = static_cast<int>(luaL_optinteger(L, 2, 0));
    {
        torch::NoGradGuard no_grad;
        ProcessGroup &group = Runtime::from(L).dist();
        same_call_everywhere(group, "broadcast(" + describe(t) + ", " + std::to_string(src) + ")");
        group.broadcast(t, src);
    }
    lua_settop(L, 1);
    return 1;
}

constexpr const char *kDataParallel = "cdrmix.DataParallel";

using DataParallel = std::shared_ptr<ModelSync>;

int l_data_parallel(lua_State *L) {
    auto &model = check_model(L, 1);
    ProcessGroup &group = Runtime::from(L).dist();
    auto sync = std::make_shared<ModelSync>(group, *model, dynamic_cast<ExpertParallel *>(model->expert_group()));
    sync->broadcast();
    push<DataParallel>(L, std::move(sync), kDataParallel);
    return 1;
}

int l_dp_sync(lua_State *L) {
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    check<DataParallel>(L, 1, kDataParallel)->set_enabled(lua_toboolean(L, 2));
    return 0;
}

int l_dp_clip_grad_norm(lua_State *L) {
    lua_pushnumber(L, check<DataParallel>(L, 1, kDataParallel)->clip_grad_norm(luaL_optnumber(L, 2, 0.0)));
    return 1;
}

int l_dp_comm_time(lua_State *L) {
    lua_pushnumber(L, check<DataParallel>(L, 1, kDataParallel)->last_wait_s());
    return 1;
}

} // namespace

void open_dist(lua_State *L) {
    static const luaL_Reg dp_methods[] = {{"sync", safe<l_dp_sync>},
                                          {"comm_time", safe<l_dp_comm_time>},
                                          {"clip_grad_norm", safe<l_dp_clip_grad_norm>},
                                          {nullptr, nullptr}};
    define_class<DataParallel>(L, kDataParallel, dp_methods);
    static const luaL_Reg functions[] = {{"rank", safe<l_rank>},
                                         {"world_size", safe<l_world_size>},
                                         {"local_rank", safe<l_local_rank>},
                                         {"barrier", safe<l_barrier>},
                                         {"all_reduce", safe<l_all_reduce>},
                                         {"broadcast", safe<l_broadcast>},
                                         {"data_parallel", safe<l_data_parallel>},
                                         {nullptr, nullptr}};
    lua_newtable(L);
    luaL_register(L, nullptr, functions);
    lua_setfield(L, -2, "dist");
}

} // namespace cdrmix::lua
