// cdrmix.Tensor: LibTorch tensors in Lua. Creation, indexing and slicing,
// arithmetic metamethods, reductions, shape operations, routing primitives
// (topk, sort, softmax, gather, scatter_add, index_add), comparisons and masks,
// einsum, dtypes and devices, autograd (backward, grad, no_grad) and
// conversion back to Lua tables. Positions (dimensions, slices, select) are
// 1-based, as everywhere in Lua, and negative ones count from the end; index
// *values* inside tensors (token ids, expert ids, what topk/sort/argmax return
// and gather/scatter take) are 0-based ids, as the model uses them.
// docs/lua.md is the reference.
#include "lua/wrap_tensor.hpp"

#include "lua/lua_util.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <sstream>

namespace cdrmix::lua {

void push_tensor(lua_State *L, at::Tensor t) { push<at::Tensor>(L, std::move(t), kTensor); }
at::Tensor &check_tensor(lua_State *L, int idx) { return check<at::Tensor>(L, idx, kTensor); }

namespace {

// Lua's names for dtypes, the first of each pair being what dtype() returns.
const std::pair<const char *, torch::ScalarType> kDtypes[] = {
    {"float32", torch::kFloat32}, {"float", torch::kFloat32},  {"float64", torch::kFloat64},
    {"double", torch::kFloat64},  {"bfloat16", torch::kBFloat16}, {"float16", torch::kFloat16},
    {"half", torch::kFloat16},    {"int64", torch::kInt64},    {"long", torch::kInt64},
    {"int32", torch::kInt32},     {"int", torch::kInt32},      {"bool", torch::kBool}};

std::optional<torch::ScalarType> find_dtype(const std::string &s) {
    for (const auto &[name, type] : kDtypes)
        if (s == name) return type;
    return std::nullopt;
}

torch::ScalarType parse_dtype(const std::string &s) {
    if (auto t = find_dtype(s)) return *t;
    throw Error("unknown dtype '" + s + "' (float32, float64, bfloat16, float16, int64, int32, bool)");
}

std::string dtype_name(torch::ScalarType t) {
    for (const auto &[name, type] : kDtypes)
        if (type == t) return name;
    return c10::toString(t);
}

// A device name for to(): "cpu", "cuda" or "cuda:N", refused at once when there is no such device.
torch::Device parse_device(const std::string &s) {
    torch::Device d(torch::kCPU);
    try {
        d = torch::Device(s);
    } catch (const std::exception &) {
        throw Error("'" + s + "' is neither a dtype (float32, float64, bfloat16, float16, int64, int32, bool) nor a "
                    "device (cpu, cuda, cuda:N)");
    }
    if (d.is_cuda() && !torch::cuda::is_available())
        throw Error("device '" + s + "': CUDA is not available to this build of LibTorch on this machine");
    return d;
}

std::vector<int64_t> check_shape(lua_State *L, int idx) {
    std::vector<int64_t> shape;
    if (lua_istable(L, idx)) {
        for (size_t i = 1; i <= lua_objlen(L, idx); ++i) {
            lua_rawgeti(L, idx, static_cast<int>(i));
            if (lua_type(L, -1) != LUA_TNUMBER)
                throw Error("shape entry " + std::to_string(i) + " is a " + luaL_typename(L, -1) + "; sizes are numbers");
            shape.push_back(static_cast<int64_t>(lua_tonumber(L, -1)));
            lua_pop(L, 1);
        }
    } else {
        for (int i = idx; i <= lua_gettop(L) && lua_isnumber(L, i); ++i) shape.push_back(lua_tointeger(L, i));
    }
    return shape;
}

// Flattens a nested numeric table, recording its shape.
void flatten(lua_State *L, int idx, size_t depth, std::vector<int64_t> &shape, std::vector<double> &out) {
    if (lua_type(L, idx) == LUA_TNUMBER) {
        if (depth != shape.size()) throw Error("cdrmix.tensor: ragged nested table");
        out.push_back(lua_tonumber(L, idx));
        return;
    }
    if (!lua_istable(L, idx)) throw Error(std::string("cdrmix.tensor: expected numbers, got ") + luaL_typename(L, idx));
    const int64_t n = static_cast<int64_t>(lua_objlen(L, idx));
    if (depth == shape.size()) shape.push_back(n);
    else if (depth > shape.size() || shape[depth] != n) throw Error("cdrmix.tensor: ragged nested table");
    for (int64_t i = 1; i <= n; ++i) {
        lua_rawgeti(L, idx, static_cast<int>(i));
        flatten(L, lua_gettop(L), depth + 1, shape, out);
        lua_pop(L, 1);
    }
}

int l_tensor(lua_State *L) {
    auto dtype = parse_dtype(luaL_optstring(L, 2, "float32"));
    if (lua_type(L, 1) == LUA_TNUMBER) {
        push_tensor(L, torch::scalar_tensor(lua_tonumber(L, 1), torch::kFloat64).to(dtype));
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    std::vector<int64_t> shape;
    std::vector<double> values;
    flatten(L, 1, 0, shape, values);
    torch::Tensor t = torch::tensor(values, torch::kFloat64).reshape(shape).to(dtype);
    push_tensor(L, t);
    return 1;
}

// The dtype named by the first string argument from `from` on (float32 when none).
torch::ScalarType trailing_dtype(lua_State *L, int from) {
    for (int i = from; i <= lua_gettop(L); ++i)
        if (lua_type(L, i) == LUA_TSTRING) return parse_dtype(lua_tostring(L, i));
    return torch::kFloat32;
}

torch::Tensor make_zeros(at::IntArrayRef s, torch::ScalarType t) { return torch::zeros(s, t); }
torch::Tensor make_ones(at::IntArrayRef s, torch::ScalarType t) { return torch::ones(s, t); }
torch::Tensor make_randn(at::IntArrayRef s, torch::ScalarType t) { return torch::randn(s, t); }
torch::Tensor make_rand(at::IntArrayRef s, torch::ScalarType t) { return torch::rand(s, t); }

// zeros(shape [, dtype]), where shape is a table or the sizes themselves: zeros({2, 3}) or zeros(2, 3).
template <torch::Tensor (*Make)(at::IntArrayRef, torch::ScalarType)> int l_make(lua_State *L) {
    push_tensor(L, Make(check_shape(L, 1), trailing_dtype(L, 2)));
    return 1;
}

int l_full(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    push_tensor(L, torch::full(check_shape(L, 1), luaL_checknumber(L, 2), trailing_dtype(L, 3)));
    return 1;
}

int l_randint(lua_State *L) {
    const auto low = static_cast<int64_t>(luaL_checkinteger(L, 1)), high = static_cast<int64_t>(luaL_checkinteger(L, 2));
    if (high <= low) throw Error("randint: high (" + std::to_string(high) + ") must exceed low (" + std::to_string(low) + ")");
    push_tensor(L, torch::randint(low, high, check_shape(L, 3), torch::kInt64));
    return 1;
}

int l_zeros_like(lua_State *L) {
    push_tensor(L, torch::zeros_like(check_tensor(L, 1)));
    return 1;
}

int l_ones_like(lua_State *L) {
    push_tensor(L, torch::ones_like(check_tensor(L, 1)));
    return 1;
}

int l_arange(lua_State *L) {
    const double a = luaL_checknumber(L, 1);
    torch::Tensor t = lua_isnumber(L, 2) ? torch::arange(a, luaL_checknumber(L, 2)) : torch::arange(a);
    push_tensor(L, t.to(torch::kFloat32));
    return 1;
}

int l_manual_seed(lua_State *L) {
    torch::manual_seed(static_cast<uint64_t>(luaL_checknumber(L, 1)));
    return 0;
}

// A number beside a tensor is a "wrapped number", as a Python scalar is to
// PyTorch: it promotes like a scalar (int64 ids < 2.5 compares in floating
// point; float32 * 2 stays float32). Integral values are integers, so int64
// ids + 1 stay int64.
torch::Tensor operand(lua_State *L, int idx, const torch::Tensor *like) {
    if (lua_type(L, idx) != LUA_TNUMBER) return check_tensor(L, idx);
    const double v = lua_tonumber(L, idx);
    const bool integral = std::floor(v) == v && std::fabs(v) < 9.0e15; // exact in a double
    torch::Tensor t = c10::scalar_to_tensor(integral ? at::Scalar(static_cast<int64_t>(v)) : at::Scalar(v),
                                            like ? like->device() : torch::Device(torch::kCPU));
    t.unsafeGetTensorImpl()->set_wrapped_number(true);
    return t;
}

template <class Op> int binary(lua_State *L, Op op) {
    torch::Tensor *a = test<torch::Tensor>(L, 1, kTensor), *b = test<torch::Tensor>(L, 2, kTensor);
    const torch::Tensor *like = a ? a : b;
    push_tensor(L, op(operand(L, 1, like), operand(L, 2, like)));
    return 1;
}

int l_add(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a + b; }); }
int l_sub(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a - b; }); }
int l_mul(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a * b; }); }
int l_div(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a / b; }); }
int l_pow(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.pow(b); }); }
// a % b: the remainder with the sign of b, as Lua's own % (and torch.remainder).
int l_mod(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.remainder(b); }); }
int l_matmul(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.matmul(b); }); }
int l_unm(lua_State *L) {
    push_tensor(L, -check_tensor(L, 1));
    return 1;
}

int l_tostring(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    std::ostringstream os;
    os << "cdrmix.Tensor(" << c10::toString(t.scalar_type()) << ", shape " << t.sizes() << ")";
    if (t.numel() <= 64) os << "\n" << t;
    lua_pushstring(L, os.str().c_str());
    return 1;
}

int l_len(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    lua_pushinteger(L, t.dim() == 0 ? 0 : static_cast<lua_Integer>(t.size(0)));
    return 1;
}

int l_shape(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    lua_createtable(L, static_cast<int>(t.dim()), 0);
    for (int64_t i = 0; i < t.dim(); ++i) {
        lua_pushinteger(L, static_cast<lua_Integer>(t.size(i)));
        lua_rawseti(L, -2, static_cast<int>(i + 1));
    }
    return 1;
}

// A 1-based position in [1, n] (negative: from the end, -1 the last) as a 0-based one.
int64_t position(int64_t p, int64_t n, const char *what) {
    const int64_t zero_based = p < 0 ? n + p : p - 1;
    if (p == 0 || zero_based < 0 || zero_based >= n)
        throw Error(std::string(what) + " " + std::to_string(p) + " out of range 1.." + std::to_string(n) +
                    " (or -" + std::to_string(n) + "..-1)");
    return zero_based;
}

int64_t lua_dim(lua_State *L, const torch::Tensor &t, int idx) {
    return position(luaL_checkinteger(L, idx), std::max<int64_t>(t.dim(), 1), "dimension");
}

// An optional dimension argument; `fallback` is 0-based (-1: the last).
int64_t opt_dim(lua_State *L, const torch::Tensor &t, int idx, int64_t fallback) {
    return lua_isnoneornil(L, idx) ? fallback : lua_dim(L, t, idx);
}

int l_size(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) return l_shape(L);
    lua_pushinteger(L, static_cast<lua_Integer>(t.size(lua_dim(L, t, 2))));
    return 1;
}

int l_dim(lua_State *L) {
    lua_pushinteger(L, static_cast<lua_Integer>(check_tensor(L, 1).dim()));
    return 1;
}

int l_numel(lua_State *L) {
    lua_pushnumber(L, static_cast<lua_Number>(check_tensor(L, 1).numel()));
    return 1;
}

int l_item(lua_State *L) {
    lua_pushnumber(L, check_tensor(L, 1).item<double>());
    return 1;
}

void push_list(lua_State *L, const double *data, const std::vector<int64_t> &shape, size_t depth, int64_t &offset) {
    if (depth == shape.size()) {
        lua_pushnumber(L, data[offset++]);
        return;
    }
    lua_createtable(L, static_cast<int>(shape[depth]), 0);
    for (int64_t i = 0; i < shape[depth]; ++i) {
        push_list(L, data, shape, depth + 1, offset);
        lua_rawseti(L, -2, static_cast<int>(i + 1));
    }
}

int l_tolist(lua_State *L) {
    torch::Tensor t = check_tensor(L, 1).detach().to(torch::kFloat64).contiguous();
    int64_t offset = 0;
    push_list(L, t.data_ptr<double>(), t.sizes().vec(), 0, offset);
    return 1;
}

template <torch::Tensor (*F)(const torch::Tensor &)> int unary(lua_State *L) {
    push_tensor(L, F(check_tensor(L, 1)));
    return 1;
}
torch::Tensor f_exp(const torch::Tensor &t) { return t.exp(); }
torch::Tensor f_floor(const torch::Tensor &t) { return t.floor(); }
torch::Tensor f_log(const torch::Tensor &t) { return t.log(); }
torch::Tensor f_sqrt(const torch::Tensor &t) { return t.sqrt(); }
torch::Tensor f_abs(const torch::Tensor &t) { return t.abs(); }
torch::Tensor f_tanh(const torch::Tensor &t) { return t.tanh(); }
torch::Tensor f_sigmoid(const torch::Tensor &t) { return t.sigmoid(); }
torch::Tensor f_relu(const torch::Tensor &t) { return t.relu(); }
torch::Tensor f_t(const torch::Tensor &t) { return t.t(); }
torch::Tensor f_detach(const torch::Tensor &t) { return t.detach(); }
torch::Tensor f_clone(const torch::Tensor &t) { return t.clone(); }
torch::Tensor f_float(const torch::Tensor &t) { return t.to(torch::kFloat32); }
torch::Tensor f_double(const torch::Tensor &t) { return t.to(torch::kFloat64); }
torch::Tensor f_long(const torch::Tensor &t) { return t.to(torch::kInt64); }
torch::Tensor f_int(const torch::Tensor &t) { return t.to(torch::kInt32); }
torch::Tensor f_bool(const torch::Tensor &t) { return t.to(torch::kBool); }
torch::Tensor f_bfloat16(const torch::Tensor &t) { return t.to(torch::kBFloat16); }
torch::Tensor f_half(const torch::Tensor &t) { return t.to(torch::kFloat16); }
torch::Tensor f_neg(const torch::Tensor &t) { return t.neg(); }
torch::Tensor f_square(const torch::Tensor &t) { return t.square(); }
torch::Tensor f_rsqrt(const torch::Tensor &t) { return t.rsqrt(); }
torch::Tensor f_softplus(const torch::Tensor &t) { return torch::softplus(t); }
torch::Tensor f_silu(const torch::Tensor &t) { return torch::silu(t); }
torch::Tensor f_contiguous(const torch::Tensor &t) { return t.contiguous(); }
torch::Tensor f_logical_not(const torch::Tensor &t) { return t.logical_not(); }
torch::Tensor f_norm(const torch::Tensor &t) { return t.norm(); }

int l_view(lua_State *L) {
    push_tensor(L, check_tensor(L, 1).reshape(check_shape(L, 2)));
    return 1;
}

int l_backward(lua_State *L) {
    check_tensor(L, 1).backward();
    return 0;
}

int l_grad(lua_State *L) {
    const torch::Tensor &g = check_tensor(L, 1).grad();
    if (!g.defined()) lua_pushnil(L);
    else push_tensor(L, g);
    return 1;
}

int l_requires_grad(lua_State *L) {
    torch::Tensor &t = check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_pushboolean(L, t.requires_grad());
        return 1;
    }
    t.set_requires_grad(lua_toboolean(L, 2));
    lua_settop(L, 1);
    return 1;
}


// ---- reductions: over everything, or along a dimension ----

// sum([dim [, keepdim]]), mean(...): a 0-d tensor, or the reduction along dim.
template <bool Mean> int l_reduce(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        push_tensor(L, Mean ? t.mean() : t.sum());
        return 1;
    }
    const int64_t d = lua_dim(L, t, 2);
    const bool keep = lua_toboolean(L, 3);
    push_tensor(L, Mean ? t.mean(d, keep) : t.sum(d, keep));
    return 1;
}

// max([dim [, keepdim]]), min(...): the extreme, or values and 0-based indices along dim.
template <bool Max> int l_extreme(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        push_tensor(L, Max ? t.max() : t.min());
        return 1;
    }
    auto [values, indices] = Max ? t.max(lua_dim(L, t, 2), lua_toboolean(L, 3)) : t.min(lua_dim(L, t, 2), lua_toboolean(L, 3));
    push_tensor(L, values);
    push_tensor(L, indices);
    return 2;
}

int l_argmax(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, lua_isnoneornil(L, 2) ? t.argmax() : t.argmax(lua_dim(L, t, 2), lua_toboolean(L, 3)));
    return 1;
}

int l_cumsum(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, t.cumsum(lua_dim(L, t, 2)));
    return 1;
}

// ---- routing primitives ----

// topk(k [, dim = -1 [, largest = true]]) -> values, 0-based indices (largest first).
int l_topk(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    const int64_t k = luaL_checkinteger(L, 2), d = opt_dim(L, t, 3, -1);
    const bool largest = lua_isnoneornil(L, 4) || lua_toboolean(L, 4);
    auto [values, indices] = t.topk(k, d, largest, /*sorted=*/true);
    push_tensor(L, values);
    push_tensor(L, indices);
    return 2;
}

// sort([dim = -1 [, descending = false]]) -> values, 0-based indices (stable).
int l_sort(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    auto [values, indices] = t.sort(/*stable=*/true, opt_dim(L, t, 2, -1), lua_toboolean(L, 3));
    push_tensor(L, values);
    push_tensor(L, indices);
    return 2;
}

template <bool Log> int l_softmax(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    const int64_t d = opt_dim(L, t, 2, -1);
    push_tensor(L, Log ? t.log_softmax(d) : t.softmax(d));
    return 1;
}

int l_gather(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, t.gather(lua_dim(L, t, 2), check_tensor(L, 3)));
    return 1;
}

// scatter_add(dim, index, src), index_add(dim, index, src): new tensors (the original is unchanged).
int l_scatter_add(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, t.scatter_add(lua_dim(L, t, 2), check_tensor(L, 3), check_tensor(L, 4)));
    return 1;
}

int l_index_add(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, t.index_add(lua_dim(L, t, 2), check_tensor(L, 3), check_tensor(L, 4)));
    return 1;
}

int l_index_select(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, t.index_select(lua_dim(L, t, 2), check_tensor(L, 3)));
    return 1;
}

int l_one_hot(lua_State *L) {
    push_tensor(L, torch::one_hot(check_tensor(L, 1), luaL_checkinteger(L, 2)));
    return 1;
}

// ---- comparisons and masks ----

int l_gt(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.gt(b); }); }
int l_lt(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.lt(b); }); }
int l_ge(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.ge(b); }); }
int l_le(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.le(b); }); }
int l_eq(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.eq(b); }); }
int l_ne(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.ne(b); }); }
int l_logical_and(lua_State *L) {
    return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.logical_and(b); });
}
int l_logical_or(lua_State *L) {
    return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.logical_or(b); });
}
int l_bmm(lua_State *L) { return binary(L, [](const torch::Tensor &a, const torch::Tensor &b) { return a.bmm(b); }); }

int l_masked_fill(lua_State *L) {
    push_tensor(L, check_tensor(L, 1).masked_fill(check_tensor(L, 2), luaL_checknumber(L, 3)));
    return 1;
}

int l_clamp(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    const c10::optional<at::Scalar> lo = lua_isnoneornil(L, 2) ? c10::nullopt : c10::optional<at::Scalar>(luaL_checknumber(L, 2));
    const c10::optional<at::Scalar> hi = lua_isnoneornil(L, 3) ? c10::nullopt : c10::optional<at::Scalar>(luaL_checknumber(L, 3));
    push_tensor(L, t.clamp(lo, hi));
    return 1;
}

// ---- shapes ----

int l_transpose(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, t.transpose(lua_dim(L, t, 2), lua_dim(L, t, 3)));
    return 1;
}

// permute(d1, d2, ...) or permute({d1, d2, ...}), 1-based.
int l_permute(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    std::vector<int64_t> dims;
    for (int64_t d : check_shape(L, 2)) dims.push_back(position(d, t.dim(), "dimension"));
    push_tensor(L, t.permute(dims));
    return 1;
}

// unsqueeze(d): a new dimension of size 1 at position d, 1..dim()+1.
int l_unsqueeze(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, t.unsqueeze(position(luaL_checkinteger(L, 2), t.dim() + 1, "dimension")));
    return 1;
}

int l_squeeze(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    push_tensor(L, lua_isnoneornil(L, 2) ? t.squeeze() : t.squeeze(lua_dim(L, t, 2)));
    return 1;
}

int l_expand(lua_State *L) {
    push_tensor(L, check_tensor(L, 1).expand(check_shape(L, 2)));
    return 1;
}

// narrow(dim, start, length), start 1-based.
int l_narrow(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    const int64_t d = lua_dim(L, t, 2);
    push_tensor(L, t.narrow(d, position(luaL_checkinteger(L, 3), t.size(d), "start"), luaL_checkinteger(L, 4)));
    return 1;
}

// select(dim, i), i 1-based: the slice at i, without that dimension.
int l_select(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    const int64_t d = lua_dim(L, t, 2);
    push_tensor(L, t.select(d, position(luaL_checkinteger(L, 3), t.size(d), "index")));
    return 1;
}

// ---- indexing: t[i], t[{spec, ...}], t[mask], and the same on the left of `=` ----

// The view a key selects. Per dimension, a number selects (dropping the
// dimension), {a, b} is the inclusive range a..b, {a} is a..a, {} everything.
torch::Tensor indexed(lua_State *L, const torch::Tensor &t, int key) {
    if (lua_type(L, key) == LUA_TNUMBER) {
        if (t.dim() == 0) throw Error("a 0-d tensor cannot be indexed; use item()");
        return t.select(0, position(lua_tointeger(L, key), t.size(0), "index"));
    }
    if (torch::Tensor *mask = test<torch::Tensor>(L, key, kTensor)) {
        if (mask->scalar_type() != torch::kBool) throw Error("a tensor used as an index must be a bool mask");
        return t.index({*mask});
    }
    if (!lua_istable(L, key)) throw Error(std::string("cannot index a tensor with a ") + luaL_typename(L, key));
    const size_t n = lua_objlen(L, key);
    if (int64_t(n) > t.dim())
        throw Error("index has " + std::to_string(n) + " entries for a " + std::to_string(t.dim()) + "-d tensor");
    torch::Tensor v = t;
    int64_t d = 0; // the dimension of v the next entry applies to
    for (size_t i = 1; i <= n; ++i) {
        lua_rawgeti(L, key, int(i));
        const int entry = lua_gettop(L);
        if (lua_type(L, entry) == LUA_TNUMBER) {
            v = v.select(d, position(lua_tointeger(L, entry), v.size(d), "index"));
        } else if (lua_istable(L, entry)) {
            const size_t parts = lua_objlen(L, entry);
            if (parts > 2) throw Error("a range is {first, last}, got " + std::to_string(parts) + " numbers");
            int64_t first = 0, last = v.size(d) - 1;
            if (parts >= 1) {
                lua_rawgeti(L, entry, 1);
                first = position(luaL_checkinteger(L, -1), v.size(d), "index");
                lua_pop(L, 1);
                last = first;
            }
            if (parts == 2) {
                lua_rawgeti(L, entry, 2);
                last = position(luaL_checkinteger(L, -1), v.size(d), "index");
                lua_pop(L, 1);
            }
            if (last < first) throw Error("range ends before it starts");
            v = v.narrow(d, first, last - first + 1);
            ++d;
        } else {
            throw Error(std::string("index entry ") + std::to_string(i) + " is a " + luaL_typename(L, entry) +
                        "; expected a number or {first, last}");
        }
        lua_pop(L, 1);
    }
    return v;
}

// __index: method names first (upvalue 1 holds the methods), then indexing.
int l_index(lua_State *L) {
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        return 1;
    }
    push_tensor(L, indexed(L, check_tensor(L, 1), 2));
    return 1;
}

// __newindex: t[key] = number or tensor writes into the selected part, in place.
int l_newindex(lua_State *L) {
    torch::Tensor &t = check_tensor(L, 1);
    if (torch::Tensor *mask = test<torch::Tensor>(L, 2, kTensor); mask && mask->scalar_type() == torch::kBool) {
        if (lua_type(L, 3) == LUA_TNUMBER) t.masked_fill_(*mask, lua_tonumber(L, 3));
        else t.index_put_({*mask}, check_tensor(L, 3).to(t.scalar_type()));
        return 0;
    }
    torch::Tensor view = indexed(L, t, 2);
    if (lua_type(L, 3) == LUA_TNUMBER) view.fill_(lua_tonumber(L, 3));
    else view.copy_(check_tensor(L, 3));
    return 0;
}

// ---- dtypes and devices ----

// to(dtype) or to(device): "float64", "bfloat16", ..., "cpu", "cuda", "cuda:1".
int l_to(lua_State *L) {
    const torch::Tensor &t = check_tensor(L, 1);
    const std::string target = luaL_checkstring(L, 2);
    if (auto dtype = find_dtype(target)) push_tensor(L, t.to(*dtype));
    else push_tensor(L, t.to(parse_device(target)));
    return 1;
}

int l_dtype(lua_State *L) {
    lua_pushstring(L, dtype_name(check_tensor(L, 1).scalar_type()).c_str());
    return 1;
}

int l_device(lua_State *L) {
    lua_pushstring(L, check_tensor(L, 1).device().str().c_str());
    return 1;
}

// ---- functions over several tensors ----

std::vector<torch::Tensor> check_tensor_list(lua_State *L, int idx, const char *what) {
    luaL_checktype(L, idx, LUA_TTABLE);
    std::vector<torch::Tensor> list;
    for (size_t i = 1; i <= lua_objlen(L, idx); ++i) {
        lua_rawgeti(L, idx, int(i));
        torch::Tensor *t = test<torch::Tensor>(L, -1, kTensor);
        if (!t) throw Error(std::string(what) + ": entry " + std::to_string(i) + " is not a tensor");
        list.push_back(*t);
        lua_pop(L, 1);
    }
    if (list.empty()) throw Error(std::string(what) + ": the list of tensors is empty");
    return list;
}

// cat(list [, dim = 1]), stack(list [, dim = 1]).
template <bool Stack> int l_join(lua_State *L) {
    const auto list = check_tensor_list(L, 1, Stack ? "stack" : "cat");
    const int64_t rank = list[0].dim() + (Stack ? 1 : 0);
    const int64_t d = lua_isnoneornil(L, 2) ? 0 : position(luaL_checkinteger(L, 2), std::max<int64_t>(rank, 1), "dimension");
    push_tensor(L, Stack ? torch::stack(list, d) : torch::cat(list, d));
    return 1;
}

// where(cond, a, b): a where cond is true, else b; a and b may be numbers.
int l_where(lua_State *L) {
    const torch::Tensor &cond = check_tensor(L, 1);
    torch::Tensor *a = test<torch::Tensor>(L, 2, kTensor), *b = test<torch::Tensor>(L, 3, kTensor);
    const torch::Tensor *like = a ? a : b;
    push_tensor(L, torch::where(cond, operand(L, 2, like), operand(L, 3, like)));
    return 1;
}

int l_einsum(lua_State *L) {
    push_tensor(L, torch::einsum(luaL_checkstring(L, 1), check_tensor_list(L, 2, "einsum")));
    return 1;
}

// no_grad(fn, ...): fn(...) with gradients off; its results. The guard ends before an error propagates.
int l_no_grad(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int status = 0;
    {
        torch::NoGradGuard guard;
        status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    }
    if (status != 0) return lua_error(L);
    return lua_gettop(L);
}

} // namespace

void open_tensor(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"shape", safe<l_shape>}, {"size", safe<l_size>}, {"dim", safe<l_dim>}, {"numel", safe<l_numel>},
        {"item", safe<l_item>}, {"tolist", safe<l_tolist>},
        // reductions
        {"sum", safe<l_reduce<false>>}, {"mean", safe<l_reduce<true>>}, {"max", safe<l_extreme<true>>},
        {"min", safe<l_extreme<false>>}, {"argmax", safe<l_argmax>}, {"cumsum", safe<l_cumsum>},
        {"norm", safe<unary<f_norm>>},
        // elementwise
        {"exp", safe<unary<f_exp>>}, {"floor", safe<unary<f_floor>>}, {"log", safe<unary<f_log>>}, {"sqrt", safe<unary<f_sqrt>>},
        {"rsqrt", safe<unary<f_rsqrt>>}, {"abs", safe<unary<f_abs>>}, {"neg", safe<unary<f_neg>>},
        {"square", safe<unary<f_square>>}, {"tanh", safe<unary<f_tanh>>}, {"sigmoid", safe<unary<f_sigmoid>>},
        {"relu", safe<unary<f_relu>>}, {"softplus", safe<unary<f_softplus>>}, {"silu", safe<unary<f_silu>>},
        {"pow", safe<l_pow>}, {"clamp", safe<l_clamp>}, {"matmul", safe<l_matmul>}, {"bmm", safe<l_bmm>},
        // routing primitives
        {"topk", safe<l_topk>}, {"sort", safe<l_sort>}, {"softmax", safe<l_softmax<false>>},
        {"log_softmax", safe<l_softmax<true>>}, {"gather", safe<l_gather>}, {"scatter_add", safe<l_scatter_add>},
        {"index_add", safe<l_index_add>}, {"index_select", safe<l_index_select>}, {"one_hot", safe<l_one_hot>},
        // comparisons and masks
        {"gt", safe<l_gt>}, {"lt", safe<l_lt>}, {"ge", safe<l_ge>}, {"le", safe<l_le>}, {"eq", safe<l_eq>},
        {"ne", safe<l_ne>}, {"logical_and", safe<l_logical_and>}, {"logical_or", safe<l_logical_or>},
        {"logical_not", safe<unary<f_logical_not>>}, {"masked_fill", safe<l_masked_fill>},
        // shapes
        {"view", safe<l_view>}, {"reshape", safe<l_view>}, {"t", safe<unary<f_t>>}, {"transpose", safe<l_transpose>},
        {"permute", safe<l_permute>}, {"unsqueeze", safe<l_unsqueeze>}, {"squeeze", safe<l_squeeze>},
        {"expand", safe<l_expand>}, {"narrow", safe<l_narrow>}, {"select", safe<l_select>},
        {"contiguous", safe<unary<f_contiguous>>},
        // dtypes, devices, autograd
        {"to", safe<l_to>}, {"dtype", safe<l_dtype>}, {"device", safe<l_device>}, {"float", safe<unary<f_float>>},
        {"double", safe<unary<f_double>>}, {"bfloat16", safe<unary<f_bfloat16>>}, {"half", safe<unary<f_half>>},
        {"long", safe<unary<f_long>>}, {"int", safe<unary<f_int>>}, {"bool", safe<unary<f_bool>>},
        {"detach", safe<unary<f_detach>>}, {"clone", safe<unary<f_clone>>}, {"backward", safe<l_backward>},
        {"grad", safe<l_grad>}, {"requires_grad", safe<l_requires_grad>}, {nullptr, nullptr}};
    static const luaL_Reg meta[] = {{"__add", safe<l_add>}, {"__sub", safe<l_sub>},   {"__mul", safe<l_mul>},
                                    {"__div", safe<l_div>}, {"__mod", safe<l_mod>}, {"__pow", safe<l_pow>},   {"__unm", safe<l_unm>},
                                    {"__len", safe<l_len>}, {"__tostring", safe<l_tostring>},
                                    {"__newindex", safe<l_newindex>}, {nullptr, nullptr}};
    define_class<at::Tensor>(L, kTensor, methods, meta);
    // Indexing shares __index with the methods: a closure over the methods table.
    luaL_getmetatable(L, kTensor);
    lua_getfield(L, -1, "__index");
    lua_pushcclosure(L, safe<l_index>, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    static const luaL_Reg functions[] = {{"tensor", safe<l_tensor>},
                                         {"zeros", safe<l_make<make_zeros>>},
                                         {"ones", safe<l_make<make_ones>>},
                                         {"randn", safe<l_make<make_randn>>},
                                         {"rand", safe<l_make<make_rand>>},
                                         {"full", safe<l_full>},
                                         {"randint", safe<l_randint>},
                                         {"zeros_like", safe<l_zeros_like>},
                                         {"ones_like", safe<l_ones_like>},
                                         {"arange", safe<l_arange>},
                                         {"manual_seed", safe<l_manual_seed>},
                                         {"cat", safe<l_join<false>>},
                                         {"stack", safe<l_join<true>>},
                                         {"where", safe<l_where>},
                                         {"einsum", safe<l_einsum>},
                                         {"no_grad", l_no_grad},
                                         {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
