// The routing inspector (model/routing_inspector.hpp) against routing known in
// advance: a Lua router that sends token t to experts t % 4 and (t + 1) % 4
// with probability 0.5 each, in both MoE layers of a small model. Every
// token's reported experts, and every expert's token counts over a sample,
// follow from the token ids alone.
#include "test_util.hpp"

#include "model/routing_inspector.hpp"

#include <cdrmix/tokenizer.hpp>

#include <fstream>

using cdrmix::Json;
using cdrmix::test::error_of;

namespace {

constexpr int64_t kExperts = 4;

std::string id_router_file() {
    const auto path = cdrmix::test::scratch_dir("routing_inspector") / "by_id.lua";
    std::ofstream(path) << R"(
return function(ctx)
  local m = {}
  function m.route(x, input)
    local ids = input.token_ids
    local indices = cdrmix.stack({ids % ctx.num_experts, (ids + 1) % ctx.num_experts}, 2)
    local probs = (indices[{{}, 1}]:one_hot(ctx.num_experts) + indices[{{}, 2}]:one_hot(ctx.num_experts)):float() * 0.5
    return {indices = indices, weights = cdrmix.full({x:size(1), 2}, 0.5), probs = probs}
  end
  return m
end)";
    return path.string();
}

std::shared_ptr<cdrmix::Model> model_with_id_router(int64_t vocab) {
    Json spec = cdrmix::test::tiny_model_spec(vocab);
    spec["moe_every"] = 1;
    spec["num_experts"] = kExperts;
    spec["top_k"] = 2;
    spec["router"] = {{"type", "lua"}, {"file", id_router_file()}};
    spec["expert"] = {{"type", "rwkv_channel_mix"}, {"expansion", 2}};
    return std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
}

} // namespace

TEST(RoutingInspector, EachTokenShowsTheExpertsItsRouterChose) {
    auto tokenizer = cdrmix::make_char_tokenizer("abcdefgh 1,");
    auto model = model_with_id_router(tokenizer->vocab_size());
    model->train();
    const cdrmix::TextRouting r = cdrmix::route_text(*model, *tokenizer, "bad cafe, 1 egg");
    EXPECT_TRUE(model->is_training()) << "the caller's mode is restored";
    EXPECT_EQ(r.layers, (std::vector<int64_t>{0, 1}));
    EXPECT_EQ(r.num_experts, kExperts);
    ASSERT_EQ(r.tokens.size(), 15u);
    for (const auto &t : r.tokens) {
        EXPECT_EQ(tokenizer->encode(t.text), std::vector<int64_t>{t.id});
        ASSERT_EQ(t.layers.size(), 2u);
        for (const auto &choices : t.layers) {
            ASSERT_EQ(choices.size(), 2u) << t.text;
            EXPECT_EQ(choices[0].expert, t.id % kExperts) << t.text;
            EXPECT_EQ(choices[1].expert, (t.id + 1) % kExperts) << t.text;
            EXPECT_DOUBLE_EQ(choices[0].prob, 0.5);
        }
    }
    const Json j = cdrmix::to_json(r);
    EXPECT_EQ(j["tokens"][2]["text"], "d");
    EXPECT_EQ(j["tokens"][2]["layers"][1][0]["expert"], tokenizer->encode("d")[0] % kExperts);
    EXPECT_EQ(error_of([&] { cdrmix::route_text(*model, *tokenizer, ""); }), "inspect: the text encodes to no tokens");
}

TEST(RoutingInspector, SpecialisationCountsTheTokensEachExpertReceived) {
    auto tokenizer = cdrmix::make_char_tokenizer("ab1 ");
    auto model = model_with_id_router(tokenizer->vocab_size());
    // ids: ' ' 0, '1' 1, 'a' 2, 'b' 3 (the char tokenizer sorts its characters)
    const auto tokens = torch::tensor(std::vector<int64_t>{2, 2, 2, 3, 0, 1, 3, 2}, torch::kInt64).view({2, 4});
    cdrmix::ExpertSpecialisation spec(tokenizer->vocab_size());
    cdrmix::ForwardContext ctx;
    ctx.record_routing = true;
    {
        torch::NoGradGuard no_grad;
        model->forward(tokens, nullptr, ctx);
    }
    spec.add(tokens, ctx.routing);
    const auto layers = spec.summary(*tokenizer, 2);
    ASSERT_EQ(layers.size(), 2u);
    const auto &experts = layers[0].experts;
    ASSERT_EQ(experts.size(), 4u);
    // Expert 2 gets 'a' (id 2, first choice) 4 times and '1' (id 1, second choice) once.
    EXPECT_EQ(experts[2].tokens, 5);
    ASSERT_EQ(experts[2].top.size(), 2u);
    EXPECT_EQ(experts[2].top[0], (std::pair<int64_t, int64_t>{2, 4}));
    EXPECT_EQ(experts[2].top[1], (std::pair<int64_t, int64_t>{1, 1}));
    EXPECT_EQ(experts[2].classes[static_cast<size_t>(cdrmix::TokenClass::Letter)], 4);
    EXPECT_EQ(experts[2].classes[static_cast<size_t>(cdrmix::TokenClass::Digit)], 1);
    // Expert 0 gets ' ' (id 0) once as first choice and 'b' (id 3) twice as second.
    EXPECT_EQ(experts[0].tokens, 3);
    EXPECT_EQ(experts[0].top[0], (std::pair<int64_t, int64_t>{3, 2}));
    EXPECT_EQ(experts[0].classes[static_cast<size_t>(cdrmix::TokenClass::Space)], 1);
    int64_t slots = 0;
    for (const auto &e : experts) slots += e.tokens;
    EXPECT_EQ(slots, 16) << "8 tokens x top-2";
    const Json j = cdrmix::ExpertSpecialisation::to_json(layers, *tokenizer);
    EXPECT_EQ(j[0]["experts"][2]["top"][0]["text"], "a");
    EXPECT_EQ(j[0]["experts"][2]["classes"]["digits"], 1);
}
