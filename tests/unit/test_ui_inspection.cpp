// The routing inspector's data: the JSON of `cdrmix inspect --json` read back,
// each token's top expert, and the tokens an expert received in the text,
// checked against a hand-made routing.
#include <data/inspection.hpp>

#include <gtest/gtest.h>

#include <stdexcept>

using namespace cdrmix::ui;
using nlohmann::json;

namespace {

// Two MoE layers (model layers 1 and 3), four experts, the text "abab ".
json routing() {
    auto tok = [](int64_t id, const char *text, json l1, json l3) {
        return json{{"id", id}, {"text", text}, {"layers", json::array({std::move(l1), std::move(l3)})}};
    };
    auto c = [](int64_t e, double p) { return json{{"expert", e}, {"prob", p}}; };
    return {{"moe_layers", {1, 3}},
            {"num_experts", 4},
            {"tokens",
             {tok(10, "a", {c(2, 0.6), c(0, 0.3)}, {c(1, 0.9)}), tok(11, "b", {c(0, 0.2), c(2, 0.7)}, {c(1, 0.5)}),
              tok(10, "a", {c(2, 0.55), c(3, 0.4)}, json::array()), tok(11, "b", {c(2, 0.8)}, {c(3, 0.6)}),
              tok(12, " ", {c(3, 0.9)}, {c(3, 0.7)})}}};
}

} // namespace

TEST(UiInspection, ParsesEveryTokenLayerAndChoice) {
    const Inspection r = parse_inspection(routing());
    EXPECT_EQ(r.layers, (std::vector<int64_t>{1, 3}));
    EXPECT_EQ(r.num_experts, 4);
    ASSERT_EQ(r.tokens.size(), 5u);
    EXPECT_EQ(r.tokens[1].text, "b");
    EXPECT_EQ(r.tokens[1].id, 11);
    ASSERT_EQ(r.tokens[1].layers[0].size(), 2u);
    EXPECT_EQ(r.tokens[1].layers[0][1].expert, 2);
    EXPECT_DOUBLE_EQ(r.tokens[1].layers[0][1].prob, 0.7);
    EXPECT_TRUE(r.tokens[2].layers[1].empty()); // dropped by a capacity limit in layer 3
}

TEST(UiInspection, TopExpertIsTheLargestShareNotTheFirstSlot) {
    const Inspection r = parse_inspection(routing());
    EXPECT_EQ(r.top_expert(0, 0), 2);
    EXPECT_EQ(r.top_expert(1, 0), 2); // listed second, with 0.7 > 0.2
    EXPECT_EQ(r.top_expert(2, 1), -1); // dropped
    EXPECT_EQ(r.top_expert(4, 1), 3);
}

TEST(UiInspection, ExpertTokensCountWhatTheExpertReceivedMostOftenFirst) {
    const Inspection r = parse_inspection(routing());
    // Layer 1, expert 2: "a" twice, "b" twice (a seen first), nothing else.
    using Counts = std::vector<std::pair<std::string, int64_t>>;
    EXPECT_EQ(r.expert_tokens(0, 2), (Counts{{"a", 2}, {"b", 2}}));
    EXPECT_EQ(r.expert_tokens(0, 0), (Counts{{"a", 1}, {"b", 1}}));
    EXPECT_EQ(r.expert_tokens(0, 3), (Counts{{"a", 1}, {" ", 1}}));
    EXPECT_EQ(r.expert_tokens(1, 3), (Counts{{"b", 1}, {" ", 1}}));
    EXPECT_EQ(r.expert_tokens(1, 1), (Counts{{"a", 1}, {"b", 1}}));
    EXPECT_TRUE(r.expert_tokens(1, 0).empty());
    // Layer 3, expert 1 got "a" once and "b" once; more "b" makes "b" first.
    json more = routing();
    more["tokens"][3]["layers"][1] = json::array({json{{"expert", 1}, {"prob", 0.9}}});
    EXPECT_EQ(parse_inspection(more).expert_tokens(1, 1), (Counts{{"b", 2}, {"a", 1}}));
}

TEST(UiInspection, MalformedRoutingNamesWhatIsWrong) {
    auto fails_with = [](json j, const std::string &expected) {
        try {
            parse_inspection(j);
            ADD_FAILURE() << "accepted " << j.dump();
        } catch (const std::runtime_error &e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
    };
    fails_with(json::array(), "not a JSON object");
    json none = routing();
    none["moe_layers"] = json::array();
    fails_with(none, "names no MoE layer");
    json j = routing();
    j.erase("num_experts");
    fails_with(j, "has no 'num_experts'");
    j = routing();
    j["tokens"][0]["layers"][0][0]["expert"] = 4;
    fails_with(j, "expert 4 of 4");
    j = routing();
    j["tokens"][2]["layers"].erase(1);
    fails_with(j, "routing for 1 layers, not 2");
    j = routing();
    j["tokens"][1]["text"] = 5;
    fails_with(j, "text is not a string");
    j = routing();
    j["tokens"][1]["layers"][0][0]["prob"] = "high";
    fails_with(j, "prob is not a number");
}

TEST(UiInspection, VisibleTokenShowsWhitespace) {
    EXPECT_EQ(visible_token("a b"), "a\xC2\xB7" "b");
    EXPECT_EQ(visible_token("\n\t"), "\\n\\t");
    EXPECT_EQ(visible_token("word"), "word");
}

namespace {

// `cdrmix inspect --json --specialisation`'s "specialisation": one MoE layer (model layer 1), two experts.
json specialisation() {
    auto expert = [](int64_t e, int64_t tokens, json top, json classes) {
        return json{{"expert", e}, {"tokens", tokens}, {"top", std::move(top)}, {"classes", std::move(classes)}};
    };
    auto top = [](const char *text, int64_t n) { return json{{"id", 0}, {"text", text}, {"count", n}}; };
    return {{"split", "val"},
            {"tokens", 64},
            {"step", 40},
            {"layers",
             {{{"layer", 1},
               {"experts",
                {expert(0, 30, {top("e", 9), top(" ", 7)},
                        {{"digits", 0}, {"letters", 21}, {"other", 0}, {"punctuation", 2}, {"spaces", 7}}),
                 expert(1, 34, {top("1", 20)},
                        {{"digits", 30}, {"letters", 4}, {"other", 0}, {"punctuation", 0}, {"spaces", 0}})}}}}}};
}

} // namespace

TEST(UiSpecialisation, ParsesExpertsWithClassesMostFirst) {
    const Specialisation s = parse_specialisation(specialisation());
    EXPECT_EQ(s.split, "val");
    EXPECT_EQ(s.tokens, 64);
    EXPECT_EQ(s.step, 40);
    ASSERT_EQ(s.layers.size(), 1u);
    EXPECT_EQ(s.layers[0].layer, 1);
    EXPECT_EQ(s.layers[0].slots(), 64);
    ASSERT_EQ(s.layers[0].experts.size(), 2u);
    const ExpertProfile &e0 = s.layers[0].experts[0];
    EXPECT_EQ(e0.slots, 30);
    using Counts = std::vector<std::pair<std::string, int64_t>>;
    EXPECT_EQ(e0.classes, (Counts{{"letters", 21}, {"spaces", 7}, {"punctuation", 2}, {"digits", 0}, {"other", 0}}));
    EXPECT_EQ(e0.top, (Counts{{"e", 9}, {" ", 7}}));
    EXPECT_EQ(s.layers[0].experts[1].classes.front(), (std::pair<std::string, int64_t>{"digits", 30}));
    // Every class keeps one place (its colour), whatever each expert's order.
    EXPECT_EQ(s.classes, (std::vector<std::string>{"digits", "letters", "other", "punctuation", "spaces"}));
    EXPECT_EQ(s.class_index("other"), 2u);
    EXPECT_EQ(s.class_index("emoji"), 5u);
}

TEST(UiSpecialisation, MalformedSpecialisationNamesWhatIsWrong) {
    auto fails_with = [](json j, const std::string &expected) {
        try {
            parse_specialisation(j);
            ADD_FAILURE() << "accepted " << j.dump();
        } catch (const std::runtime_error &e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
    };
    fails_with(json(), "not a JSON object");
    json j = specialisation();
    j["layers"] = json::array();
    fails_with(j, "names no MoE layer");
    j = specialisation();
    j["layers"][0]["experts"][1]["expert"] = 3;
    fails_with(j, "layer 1 lists its experts out of order");
    j = specialisation();
    j["layers"][0]["experts"][0].erase("classes");
    fails_with(j, "has no 'classes'");
    j = specialisation();
    j["layers"][0]["experts"][0]["top"][0]["count"] = "many";
    fails_with(j, "count is not an integer");
    j = specialisation();
    j.erase("step");
    EXPECT_EQ(parse_specialisation(j).step, -1) << "the step is optional (cdrmix inspect does not give one)";
}
