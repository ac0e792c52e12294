// cdrmix.Tensor: LibTorch tensors in Lua. Creation (tensor, zeros, ones, randn,
// arange), arithmetic metamethods, reductions, shape queries, autograd
// (backward, grad) and conversion back to Lua tables. Dimensions are 1-based,
// as everywhere in Lua.
#include "lua/wrap_tensor.hpp"

#include "lua/lua_util.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <sstream>

namespace cdrmix::lua {

void push_tensor(lua_State *L, at::Tensor t) { push<at::Tensor>(L, std::move(t), kTensor); }
at::Tensor &check_tensor(lua_State *L, int idx) { return check<at::Tensor>(L, idx, kTensor); }

namespace {

torch::ScalarType parse_dtype(const std::string &s) {
    if (s == "float32" || s == "float") return torch::kFloat32;
    if (s == "float64" || s == "double") return torch::kFloat64;
    if (s == "int64" || s == "long") return torch::kInt64;
    if (s == "int32" || s == "int") return torch::kInt32;
    if (s == "bool") return torch::kBool;
    throw Error("unknown dtype '" + s + "' (float32, float64, int64, int32, bool)");
}

std::vector<int64_t> check_shape(lua_State *L, int idx) {
    std::vector<int64_t> shape;
    if (lua_istable(L, idx)) {
        for (size_t i = 1; i <= lua_objlen(L, idx); ++i) {
            lua_rawgeti(L, idx, static_cast<int>(i));
            shape.push_back(static_cast<int64_t>(luaL_checknumber(L, -1)));
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

torch::Tensor make_zeros(at::IntArrayRef s) { return torch::zeros(s); }
torch::Tensor make_ones(at::IntArrayRef s) { return torch::ones(s); }
torch::Tensor make_randn(at::IntArrayRef s) { return torch::randn(s); }

template <torch::Tensor (*Make)(at::IntArrayRef)> int l_make(lua_State *L) {
    push_tensor(L, Make(check_shape(L, 1)));
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

// Numbers on either side of an operator become 0-d tensors of the other side's dtype.
torch::Tensor operand(lua_State *L, int idx, const torch::Tensor *like) {
    if (lua_type(L, idx) == LUA_TNUMBER)
        return torch::scalar_tensor(lua_tonumber(L, idx), like ? like->options() : at::TensorOptions());
    return check_tensor(L, idx);
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

int64_t lua_dim(lua_State *L, const torch::Tensor &t, int idx) {
    const int64_t d = luaL_checkinteger(L, idx);
    if (d < 1 || d > t.dim())
        throw Error("dimension " + std::to_string(d) + " out of range for a " + std::to_string(t.dim()) + "-d tensor");
    return d - 1;
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
torch::Tensor f_sum(const torch::Tensor &t) { return t.sum(); }
torch::Tensor f_mean(const torch::Tensor &t) { return t.mean(); }
torch::Tensor f_max(const torch::Tensor &t) { return t.max(); }
torch::Tensor f_min(const torch::Tensor &t) { return t.min(); }
torch::Tensor f_exp(const torch::Tensor &t) { return t.exp(); }
torch::Tensor f_log(const torch::Tensor &t) { return t.log(); }
torch::Tensor f_sqrt(const torch::Tensor &t) { return t.sqrt(); }
torch::Tensor f_abs(const torch::Tensor &t) { return t.abs(); }
torch::Tensor f_tanh(const torch::Tensor &t) { return t.tanh(); }
torch::Tensor f_sigmoid(const torch::Tensor &t) { return t.sigmoid(); }
torch::Tensor f_relu(const torch::Tensor &t) { return t.relu(); }
torch::Tensor f_argmax(const torch::Tensor &t) { return t.argmax(); }
torch::Tensor f_t(const torch::Tensor &t) { return t.t(); }
torch::Tensor f_detach(const torch::Tensor &t) { return t.detach(); }
torch::Tensor f_clone(const torch::Tensor &t) { return t.clone(); }
torch::Tensor f_float(const torch::Tensor &t) { return t.to(torch::kFloat32); }
torch::Tensor f_double(const torch::Tensor &t) { return t.to(torch::kFloat64); }
torch::Tensor f_long(const torch::Tensor &t) { return t.to(torch::kInt64); }

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

} // namespace

void open_tensor(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"shape", safe<l_shape>},     {"size", safe<l_size>},         {"dim", safe<l_dim>},
        {"numel", safe<l_numel>},     {"item", safe<l_item>},         {"tolist", safe<l_tolist>},
        {"sum", safe<unary<f_sum>>},  {"mean", safe<unary<f_mean>>},  {"max", safe<unary<f_max>>},
        {"min", safe<unary<f_min>>},  {"exp", safe<unary<f_exp>>},    {"log", safe<unary<f_log>>},
        {"sqrt", safe<unary<f_sqrt>>}, {"abs", safe<unary<f_abs>>},   {"tanh", safe<unary<f_tanh>>},
        {"sigmoid", safe<unary<f_sigmoid>>}, {"relu", safe<unary<f_relu>>}, {"argmax", safe<unary<f_argmax>>},
        {"t", safe<unary<f_t>>},      {"detach", safe<unary<f_detach>>}, {"clone", safe<unary<f_clone>>},
        {"float", safe<unary<f_float>>}, {"double", safe<unary<f_double>>}, {"long", safe<unary<f_long>>},
        {"view", safe<l_view>},       {"reshape", safe<l_view>},      {"matmul", safe<l_matmul>},
        {"pow", safe<l_pow>},         {"backward", safe<l_backward>}, {"grad", safe<l_grad>},
        {"requires_grad", safe<l_requires_grad>}, {nullptr, nullptr}};
    static const luaL_Reg meta[] = {{"__add", safe<l_add>}, {"__sub", safe<l_sub>},   {"__mul", safe<l_mul>},
                                    {"__div", safe<l_div>}, {"__pow", safe<l_pow>},   {"__unm", safe<l_unm>},
                                    {"__len", safe<l_len>}, {"__tostring", safe<l_tostring>}, {nullptr, nullptr}};
    define_class<at::Tensor>(L, kTensor, methods, meta);

    static const luaL_Reg functions[] = {{"tensor", safe<l_tensor>},
                                         {"zeros", safe<l_make<make_zeros>>},
                                         {"ones", safe<l_make<make_ones>>},
                                         {"randn", safe<l_make<make_randn>>},
                                         {"arange", safe<l_arange>},
                                         {"manual_seed", safe<l_manual_seed>},
                                         {nullptr, nullptr}};
    luaL_register(L, nullptr, functions);
}

} // namespace cdrmix::lua
