// The `lua` router and block (host/src/lua/lua_modules.cpp): the experiments'
// Lua top-k router decides exactly as the C++ topk router with the same gate,
// and an MoE model trains through it with the same losses; a module's tensors
// are the model's parameters; errors in a module file name the file.
// (Both also run through the block and router contract suites.)
#include "test_util.hpp"

#include "model/model.hpp"

#include <fstream>

using cdrmix::Json;
using cdrmix::test::error_of;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

const std::string kModules = std::string(CDRMIX_SOURCE_DIR) + "/experiments/modules/";

std::shared_ptr<cdrmix::Router> make_router(const Json &cfg, int64_t k = 2) {
    return cdrmix::Registry::global().create_router(cdrmix::Config(cfg, "test", "test"),
                                                    cdrmix::RouterContext{16, 4, k, 0});
}

Json lua_router() { return {{"type", "lua"}, {"file", kModules + "topk_router.lua"}}; }

// A module file written for one test.
std::string module_file(const std::string &name, const std::string &text) {
    const auto path = cdrmix::test::scratch_dir("lua_modules_" + name) / (name + ".lua");
    std::ofstream(path) << text;
    return path.string();
}

Json moe_spec(const Json &router) {
    Json spec = cdrmix::test::tiny_model_spec(40);
    spec["moe_every"] = 2;
    spec["num_experts"] = 4;
    spec["top_k"] = 2;
    spec["router"] = router;
    spec["expert"] = {{"type", "rwkv_channel_mix"}, {"expansion", 2}};
    return spec;
}

} // namespace

TEST(LuaModules, TopkRouterInLuaDecidesAsTheCppRouter) {
    auto cpp = make_router({{"type", "topk"}});
    auto lua = make_router(lua_router());
    ASSERT_EQ(lua->named_parameters().size(), 1u);
    {
        torch::NoGradGuard no_grad;
        lua->named_parameters()["gate.weight"].copy_(cpp->named_parameters()["gate.weight"]);
    }
    torch::manual_seed(1);
    const Tensor x = torch::randn({32, 16});
    cpp->train();
    lua->train();
    const auto a = cpp->route(x, {}), b = lua->route(x, {});
    EXPECT_TRUE(torch::equal(a.indices, b.indices));
    EXPECT_LT(max_abs_diff(a.weights, b.weights), 1e-7);
    EXPECT_LT(max_abs_diff(a.probs, b.probs), 1e-7);
    ASSERT_EQ(a.losses.size(), b.losses.size());
    for (size_t i = 0; i < a.losses.size(); ++i) {
        EXPECT_EQ(a.losses[i].name, b.losses[i].name);
        EXPECT_NEAR(a.losses[i].value.item<double>(), b.losses[i].value.item<double>(), 1e-7) << a.losses[i].name;
    }
    lua->eval();
    EXPECT_TRUE(lua->route(x, {}).losses.empty()) << "auxiliary losses only in training";
}

// The MoE layer dispatches a Lua router's decisions as a C++ router's: same
// gate, same losses and gradients, and the optimiser moves the Lua gate.
TEST(LuaModules, MoeModelWithTheLuaRouterTrainsAsWithTheCppRouter) {
    torch::manual_seed(3);
    cdrmix::Model cpp(cdrmix::ModelSpec::from_json(moe_spec({{"type", "topk"}}), "test"), cdrmix::Registry::global());
    torch::manual_seed(3);
    cdrmix::Model lua(cdrmix::ModelSpec::from_json(moe_spec(lua_router()), "test"), cdrmix::Registry::global());
    auto lp = lua.named_parameters();
    ASSERT_TRUE(lp.contains("blocks.1.ffn.router.gate.weight")) << "the Lua gate is one of the model's parameters";
    {
        torch::NoGradGuard no_grad;
        for (const auto &p : cpp.named_parameters()) {
            ASSERT_TRUE(lp.contains(p.key())) << p.key() << ": the same names as the C++ router's model";
            lp[p.key()].copy_(p.value());
        }
    }
    EXPECT_EQ(cpp.num_parameters(), lua.num_parameters());
    const Tensor batch = torch::randint(0, 40, {2, 9});
    auto a = cpp.loss(batch), b = lua.loss(batch);
    EXPECT_NEAR(a.total.item<double>(), b.total.item<double>(), 1e-6);
    a.total.backward();
    b.total.backward();
    EXPECT_LT(max_abs_diff(cpp.named_parameters()["blocks.1.ffn.router.gate.weight"].grad(),
                           lp["blocks.1.ffn.router.gate.weight"].grad()),
              1e-6);
    const Tensor before = lp["blocks.1.ffn.router.gate.weight"].detach().clone();
    torch::optim::AdamW opt(lua.parameters(), torch::optim::AdamWOptions(1e-2));
    opt.step();
    EXPECT_GT(max_abs_diff(before, lp["blocks.1.ffn.router.gate.weight"]), 1e-4);
    // Converting the model converts the tensors the Lua code holds (the same tensors).
    lua.to(torch::kFloat64);
    lua.eval();
    EXPECT_TRUE(std::isfinite(lua.loss(batch).total.item<double>()));
}

TEST(LuaModules, NestedTablesBecomeSubmodulesAndPlainTensorsBuffers) {
    const std::string file = module_file("nested", R"(
return function(ctx, options)
  local m = {layers = {{w = cdrmix.parameter({ctx.hidden_size, ctx.hidden_size}, "zeros")},
                       {w = cdrmix.parameter({ctx.hidden_size, ctx.hidden_size}, {uniform = 0.1})}},
             scale = cdrmix.tensor({options.scale}), fn = function() end}
  m.alias = m.layers[1].w -- the same tensor twice: registered once
  function m.forward(x, state, fctx) return x:matmul(m.layers[2].w) * m.scale, state and {} end
  return m
end)");
    auto b = cdrmix::test::make_block({{"type", "lua"}, {"file", file}, {"options", {{"scale", 2.5}}}},
                                      cdrmix::BlockContext{8, 0, 1});
    std::vector<std::string> names;
    for (const auto &p : b->named_parameters()) names.push_back(p.key());
    EXPECT_EQ(names, (std::vector<std::string>{"alias", "layers.2.w"}));
    ASSERT_EQ(b->named_buffers().size(), 1u);
    EXPECT_EQ(b->named_buffers()["scale"].item<double>(), 2.5);
    EXPECT_TRUE(torch::equal(b->named_parameters()["alias"], torch::zeros({8, 8})));
    const double bound = b->named_parameters()["layers.2.w"].abs().max().item<double>();
    EXPECT_GT(bound, 0.0);
    EXPECT_LE(bound, 0.1);
}

TEST(LuaModules, ALuaFeedForwardServesAsAnExpert) {
    const std::string file = module_file("expert", R"(
return function(ctx)
  local m = {w = cdrmix.parameter({ctx.hidden_size, ctx.hidden_size})}
  function m.forward_tokens(x) return x:matmul(m.w):relu() end
  return m
end)");
    Json spec = moe_spec({{"type", "topk"}});
    spec["expert"] = {{"type", "lua"}, {"file", file}};
    cdrmix::Model model(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    EXPECT_TRUE(model.named_parameters().contains("blocks.1.ffn.experts.3.w"));
    auto out = model.loss(torch::randint(0, 40, {2, 5}));
    out.total.backward();
    EXPECT_TRUE(model.named_parameters()["blocks.1.ffn.experts.0.w"].grad().defined());
}

TEST(LuaModules, ErrorsNameTheModuleFile) {
    EXPECT_NE(error_of([] { make_router({{"type", "lua"}, {"file", "no/such/router.lua"}}); })
                  .find("no Lua module file 'no/such/router.lua' (looked at "),
              std::string::npos);
    const std::string not_fn = module_file("not_fn", "return 42\n");
    EXPECT_NE(error_of([&] { make_router({{"type", "lua"}, {"file", not_fn}}); })
                  .find("returns a number; it must return its constructor"),
              std::string::npos);
    const std::string syntax = module_file("syntax", "return function(ctx)\n  local x = = 1\nend\n");
    EXPECT_NE(error_of([&] { make_router({{"type", "lua"}, {"file", syntax}}); }).find("syntax.lua:2:"),
              std::string::npos);
    const std::string no_route = module_file("no_route", "return function() return {} end\n");
    EXPECT_NE(error_of([&] { make_router({{"type", "lua"}, {"file", no_route}}); })
                  .find("no_route.lua': the module's table has no function 'route'"),
              std::string::npos);
    const std::string bad_shape = module_file("bad_shape", R"(
return function(ctx)
  local m = {}
  function m.route(x) local p = x:matmul(cdrmix.ones({16, 4})):softmax(-1); local v, i = p:topk(1)
    return {indices = i, weights = v, probs = p} end
  return m
end)");
    auto r = make_router({{"type", "lua"}, {"file", bad_shape}});
    const std::string m = error_of([&] { r->route(torch::randn({5, 16}), {}); });
    EXPECT_NE(m.find("bad_shape.lua': route's indices have shape [5, 1]; expected [5, 2] (tokens, top_k)"),
              std::string::npos)
        << m;
    const std::string throws = module_file("throws", R"(
return function(ctx)
  local m = {}
  function m.route(x)
    return x:no_such_method()
  end
  return m
end)");
    auto t = make_router({{"type", "lua"}, {"file", throws}});
    EXPECT_NE(error_of([&] { t->route(torch::randn({5, 16}), {}); }).find("throws.lua:5:"), std::string::npos);
}
