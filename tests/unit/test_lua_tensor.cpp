// The Lua tensor API against LibTorch itself: each binding, run from a Lua
// snippet on random inputs, returns what the LibTorch call it wraps returns
// (1-based positions translated, 0-based index values kept).
#include "lua/runtime.hpp"
#include "lua/wrap_tensor.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

using torch::Tensor;

class LuaTensor : public ::testing::Test {
protected:
    void SetUp() override {
        L = luaL_newstate();
        luaL_openlibs(L);
        lua_newtable(L);
        cdrmix::lua::open_tensor(L);
        lua_setglobal(L, "cdrmix");
        torch::manual_seed(7);
        x = torch::randn({4, 5, 6});
        set("x", x);
    }
    void TearDown() override { lua_close(L); }

    void set(const char *name, const Tensor &t) {
        cdrmix::lua::push_tensor(L, t);
        lua_setglobal(L, name);
    }
    // Runs the chunk (named test.lua); its results as tensors. A Lua error fails the test with its message.
    std::vector<Tensor> run(const std::string &code) {
        const int top = lua_gettop(L);
        if (luaL_loadbuffer(L, code.data(), code.size(), "=test.lua") != 0 || lua_pcall(L, 0, LUA_MULTRET, 0) != 0) {
            ADD_FAILURE() << lua_tostring(L, -1);
            lua_settop(L, top);
            return {};
        }
        std::vector<Tensor> out;
        for (int i = top + 1; i <= lua_gettop(L); ++i) out.push_back(cdrmix::lua::check_tensor(L, i));
        lua_settop(L, top);
        return out;
    }
    Tensor one(const std::string &code) {
        auto r = run(code);
        return r.empty() ? Tensor() : r[0];
    }
    // The error message the chunk raises ("" when it runs).
    std::string error(const std::string &code) {
        const int top = lua_gettop(L);
        std::string msg;
        if (luaL_loadbuffer(L, code.data(), code.size(), "=test.lua") != 0 || lua_pcall(L, 0, 0, 0) != 0)
            msg = lua_tostring(L, -1);
        lua_settop(L, top);
        return msg;
    }

    lua_State *L = nullptr;
    Tensor x;
};

void expect_same(const Tensor &got, const Tensor &want, const char *what) {
    ASSERT_TRUE(got.defined()) << what;
    EXPECT_EQ(got.sizes(), want.sizes()) << what;
    EXPECT_EQ(got.scalar_type(), want.scalar_type()) << what;
    EXPECT_TRUE(got.equal(want)) << what;
}

} // namespace

TEST_F(LuaTensor, IndexingSelectsNarrowsAndMasks) {
    using torch::indexing::Slice;
    expect_same(one("return x[2]"), x.select(0, 1), "x[2]");
    expect_same(one("return x[-1]"), x.select(0, 3), "x[-1]");
    expect_same(one("return x[{2, {2, 4}}]"), x.index({1, Slice(1, 4)}), "x[{2, {2, 4}}]");
    expect_same(one("return x[{{}, -1, {3}}]"), x.index({Slice(), 4, Slice(2, 3)}), "x[{{}, -1, {3}}]");
    expect_same(one("return x[x:gt(0)]"), x.masked_select(x.gt(0)), "mask");
    expect_same(one("return x:narrow(3, 2, 3)"), x.narrow(2, 1, 3), "narrow");
    expect_same(one("return x:select(2, 5)"), x.select(1, 4), "select");
    expect_same(one("return x:index_select(2, cdrmix.tensor({4, 0}, 'int64'))"),
                x.index_select(1, torch::tensor({4, 0})), "index_select");

    Tensor y = x.clone();
    y.index_put_({1, Slice(0, 2)}, 0.0);
    expect_same(one("local y = x:clone(); y[{2, {1, 2}}] = 0; return y"), y, "assign a number");
    y = x.clone();
    y.select(0, 0).copy_(x.select(0, 3));
    expect_same(one("local y = x:clone(); y[1] = x[4]; return y"), y, "assign a tensor");
    y = x.clone();
    y.index_put_({y.lt(0)}, torch::tensor(0.0));
    expect_same(one("local y = x:clone(); y[y:lt(0)] = 0; return y"), y, "assign through a mask");

    EXPECT_NE(error("return x[5]").find("test.lua:1: index 5 out of range 1..4"), std::string::npos) << error("return x[5]");
    EXPECT_NE(error("return x[{1, 1, 1, 1}]").find("index has 4 entries for a 3-d tensor"), std::string::npos);
    EXPECT_NE(error("return x[{{3, 2}}]").find("range ends before it starts"), std::string::npos);
    EXPECT_EQ(one("return x:sum()").item<double>(), x.sum().item<double>()) << "methods still resolve";
}

TEST_F(LuaTensor, RoutingPrimitivesMatchLibTorch) {
    const auto [values, indices] = x.topk(2, -1);
    auto r = run("return x:topk(2)");
    ASSERT_EQ(r.size(), 2u);
    expect_same(r[0], values, "topk values");
    expect_same(r[1], indices, "topk indices are 0-based");
    r = run("return x:topk(3, 2, false)");
    ASSERT_EQ(r.size(), 2u);
    expect_same(r[1], std::get<1>(x.topk(3, 1, false)), "topk smallest along dim 2");
    r = run("return x:sort(1, true)");
    ASSERT_EQ(r.size(), 2u);
    expect_same(r[0], std::get<0>(x.sort(true, 0, true)), "sort values");
    expect_same(r[1], std::get<1>(x.sort(true, 0, true)), "sort indices");
    expect_same(one("return x:softmax()"), x.softmax(-1), "softmax");
    expect_same(one("return x:log_softmax(2)"), x.log_softmax(1), "log_softmax");

    const Tensor idx = torch::randint(5, {4, 3, 6});
    set("idx", idx);
    expect_same(one("return x:gather(2, idx)"), x.gather(1, idx), "gather");
    const Tensor src = torch::randn({4, 3, 6});
    set("src", src);
    expect_same(one("return cdrmix.zeros(4, 5, 6):scatter_add(2, idx, src)"),
                torch::zeros({4, 5, 6}).scatter_add(1, idx, src), "scatter_add");
    const Tensor rows = torch::tensor({0, 2, 0});
    set("rows", rows);
    expect_same(one("return cdrmix.zeros({3, 5, 6}):index_add(1, rows, x[{{1, 3}}])"),
                torch::zeros({3, 5, 6}).index_add(0, rows, x.narrow(0, 0, 3)), "index_add");
    expect_same(one("return rows:one_hot(4)"), torch::one_hot(rows, 4), "one_hot");
    expect_same(one("return x:cumsum(3)"), x.cumsum(2), "cumsum");
    r = run("return x:max(2)");
    ASSERT_EQ(r.size(), 2u);
    expect_same(r[1], std::get<1>(x.max(1)), "max indices along a dim");
    expect_same(one("return x:sum(1, true)"), x.sum(0, true), "sum with keepdim");
    expect_same(one("return x:mean(-1)"), x.mean(-1), "mean along the last dim");
    expect_same(one("return x:argmax(3)"), x.argmax(2), "argmax along a dim");
}

TEST_F(LuaTensor, NumbersPromoteLikeScalars) {
    const Tensor ids = torch::tensor({0, 1, 2, 3});
    set("ids", ids);
    expect_same(one("return ids:lt(2.5)"), ids.lt(2.5), "an int64 id compared with 2.5");
    expect_same(one("return ids + 0.5"), ids + 0.5, "int64 + 0.5 is floating point");
    expect_same(one("return ids + 1"), ids + 1, "int64 + 1 stays int64");
    expect_same(one("return x * 2"), x * 2, "float32 * 2 stays float32");
    expect_same(one("return 1 - x"), 1 - x, "a number on the left");
    expect_same(one("return cdrmix.where(ids:gt(1), ids, 0.5)"), torch::where(ids.gt(1), ids, 0.5), "where");
    expect_same(one("return (ids - 2) % 3"), (ids - 2).remainder(3), "% takes the sign of the divisor, as Lua's");
    expect_same(one("return x % 0.5"), x.remainder(0.5), "% of floats");
    expect_same(one("return (x * 3):floor()"), (x * 3).floor(), "floor");
}

TEST_F(LuaTensor, MasksComparisonsAndJoinsMatchLibTorch) {
    expect_same(one("return x:ge(0.5)"), x.ge(0.5), "ge");
    expect_same(one("return x:eq(x)"), x.eq(x), "eq");
    expect_same(one("return x:gt(0):logical_and(x:lt(1))"), x.gt(0).logical_and(x.lt(1)), "logical_and");
    expect_same(one("return x:le(0):logical_not()"), x.le(0).logical_not(), "logical_not");
    expect_same(one("return x:masked_fill(x:lt(0), -1e9)"), x.masked_fill(x.lt(0), -1e9), "masked_fill");
    expect_same(one("return cdrmix.where(x:gt(0), x, 0)"), torch::where(x.gt(0), x, torch::scalar_tensor(0.0)), "where");
    expect_same(one("return x:clamp(-0.5, 0.5)"), x.clamp(-0.5, 0.5), "clamp");
    expect_same(one("return x:clamp(nil, 0)"), x.clamp(c10::nullopt, 0), "clamp above only");
    expect_same(one("return cdrmix.cat({x, x}, 2)"), torch::cat({x, x}, 1), "cat");
    expect_same(one("return cdrmix.stack({x, x}, -1)"), torch::stack({x, x}, 3), "stack at the end");
    expect_same(one("return cdrmix.einsum('bij,bkj->bik', {x, x})"), torch::einsum("bij,bkj->bik", {x, x}), "einsum");
    expect_same(one("return x:bmm(x:transpose(2, 3))"), x.bmm(x.transpose(1, 2)), "bmm");
    expect_same(one("return x:permute(3, 1, 2)"), x.permute({2, 0, 1}), "permute");
    expect_same(one("return x:unsqueeze(4):squeeze(4)"), x, "unsqueeze/squeeze");
    expect_same(one("return x[{{}, {1}}]:expand({4, 3, 6})"), x.narrow(1, 0, 1).expand({4, 3, 6}), "expand");
}

TEST_F(LuaTensor, DtypesDevicesGradModeAndSeeds) {
    expect_same(one("return x:to('float64')"), x.to(torch::kFloat64), "to float64");
    expect_same(one("return x:bfloat16()"), x.to(torch::kBFloat16), "bfloat16");
    expect_same(one("return cdrmix.zeros({2, 3}, 'float64')"), torch::zeros({2, 3}, torch::kFloat64), "zeros with a dtype");
    expect_same(one("return cdrmix.full({2}, 3, 'int64')"), torch::full({2}, 3, torch::kInt64), "full");
    EXPECT_EQ(error("assert(x:dtype() == 'float32' and x:to('bfloat16'):dtype() == 'bfloat16' and x:device() == 'cpu')"),
              "");
    EXPECT_NE(error("return x:to('tpu')").find("'tpu' is neither a dtype"), std::string::npos) << error("return x:to('tpu')");
    if (!torch::cuda::is_available())
        EXPECT_NE(error("return x:to('cuda')").find("CUDA is not available"), std::string::npos);

    // no_grad: nothing inside records a graph; the mode is restored after, and after an error.
    EXPECT_EQ(error("local w = cdrmix.randn(3):requires_grad(true)\n"
                    "local a, b = cdrmix.no_grad(function(s) return w * s, 7 end, 2)\n"
                    "assert(not a:requires_grad() and b == 7)\n"
                    "assert((w * 2):requires_grad())\n"
                    "assert(not pcall(cdrmix.no_grad, function() error('inside') end))\n"
                    "assert((w * 2):requires_grad())"),
              "");
    // Seeds make random tensors repeat.
    const auto a = run("cdrmix.manual_seed(3) return cdrmix.rand(5), cdrmix.randint(0, 10, {4})");
    const auto b = run("cdrmix.manual_seed(3) return cdrmix.rand(5), cdrmix.randint(0, 10, {4})");
    ASSERT_EQ(a.size(), 2u);
    ASSERT_EQ(b.size(), 2u);
    expect_same(a[0], b[0], "rand repeats");
    expect_same(a[1], b[1], "randint repeats");
    EXPECT_EQ(a[1].scalar_type(), torch::kInt64);
    // (a call in `return f()` is a tail call, which Lua reports without a line: these are not)
    EXPECT_NE(error("local r = cdrmix.randint(3, 3, {1})").find("test.lua:1: randint: high (3) must exceed low (3)"),
              std::string::npos);
    EXPECT_NE(error("local z = cdrmix.zeros({2, 'a'})").find("test.lua:1: shape entry 2 is a string; sizes are numbers"),
              std::string::npos);
}
