// Model assembly: RWKV-LM parameter names, streaming equal to parallel for the
// whole model, checkpoints that round-trip and refuse corruption.
#include "core/files.hpp"
#include "model/model.hpp"
#include "model/sampler.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>

#include <filesystem>

using cdrmix::Json;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

Json tiny_spec() {
    return {{"vocab_size", 11},
            {"hidden_size", 16},
            {"num_layers", 2},
            {"mixer", {{"type", "rwkv7_time_mix"}, {"head_size", 8}}},
            {"ffn", {{"type", "rwkv_channel_mix"}}},
            {"moe_every", 2},
            {"num_experts", 3},
            {"top_k", 2},
            {"expert", {{"type", "rwkv_channel_mix"}, {"expansion", 2}}}};
}

std::shared_ptr<cdrmix::Model> tiny_model() {
    return std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(tiny_spec(), "test"), cdrmix::Registry::global());
}

} // namespace

TEST(Model, ParameterNamesFollowRwkvLm) {
    auto m = tiny_model();
    auto params = m->named_parameters();
    for (const char *name :
         {"emb.weight", "blocks.0.ln0.weight", "blocks.0.ln1.weight", "blocks.0.att.receptance.weight",
          "blocks.0.att.w0", "blocks.0.att.w1", "blocks.0.att.w2", "blocks.0.att.a0", "blocks.0.att.k_k",
          "blocks.0.att.r_k", "blocks.0.att.ln_x.weight", "blocks.0.att.output.weight", "blocks.0.ffn.x_k",
          "blocks.0.ffn.key.weight", "blocks.0.ffn.value.weight", "blocks.1.att.v0", "blocks.1.att.v2",
          "blocks.1.ffn.x_k", "blocks.1.ffn.router.gate.weight", "blocks.1.ffn.experts.2.key.weight",
          "ln_out.weight", "head.weight"})
        EXPECT_TRUE(params.contains(name)) << name;
    EXPECT_FALSE(params.contains("blocks.0.att.v0")); // layer 0 produces v_first, it does not mix towards it
    EXPECT_FALSE(params.contains("blocks.1.ln0.weight"));
    EXPECT_EQ(params["blocks.0.att.r_k"].sizes(), (std::vector<int64_t>{2, 8})); // [heads, head_size]
}

TEST(Model, SpecErrors) {
    Json bad = tiny_spec();
    bad["num_layer"] = 3;
    try {
        cdrmix::ModelSpec::from_json(bad, "m.yaml");
        FAIL() << "accepted an unknown key";
    } catch (const cdrmix::Error &e) {
        EXPECT_STREQ(e.what(), "model (m.yaml): unknown key 'num_layer'");
    }
    bad = tiny_spec();
    bad.erase("hidden_size");
    EXPECT_THROW(cdrmix::ModelSpec::from_json(bad, "m.yaml"), cdrmix::Error);
}

TEST(Model, StreamingLogitsEqualParallel) {
    auto m = tiny_model();
    m->to(torch::kFloat64);
    cdrmix::test::perturb(*m, 0.05, 21);
    m->eval();
    torch::NoGradGuard no_grad;
    Tensor tokens = torch::randint(0, 11, {2, 12}, torch::kInt64);
    cdrmix::ForwardContext ctx;
    Tensor whole = m->forward(tokens, nullptr, ctx);
    cdrmix::ModelState state;
    std::vector<Tensor> parts;
    cdrmix::ForwardContext c0;
    parts.push_back(m->forward(tokens.slice(1, 0, 5), &state, c0));
    for (int64_t t = 5; t < 12; ++t) {
        cdrmix::ForwardContext c;
        parts.push_back(m->forward(tokens.slice(1, t, t + 1), &state, c));
    }
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), whole), 1e-5);
}

TEST(Model, LossIncludesRouterAuxLosses) {
    auto m = tiny_model();
    Tensor batch = torch::randint(0, 11, {2, 9}, torch::kInt64);
    auto out = m->loss(batch);
    ASSERT_EQ(out.aux.size(), 2u); // load_balance and z_loss of the one MoE layer
    EXPECT_EQ(out.aux[0].name, "layer1.load_balance");
    double aux = 0;
    for (const auto &a : out.aux) aux += a.value.item<double>();
    EXPECT_NEAR(out.total.item<double>(), out.ce.item<double>() + aux, 1e-6);
    EXPECT_NEAR(out.ce.item<double>(), std::log(11.0), 0.5); // untrained: near uniform over 11 tokens
    ASSERT_EQ(out.router_stats.size(), 1u);
}

TEST(Model, CheckpointRoundTrip) {
    auto m = tiny_model();
    cdrmix::test::perturb(*m, 0.05, 22);
    auto opt = cdrmix::make_adamw(*m, 1e-3, 0.1, 0.9, 0.99, 1e-8);
    auto tok = cdrmix::make_byte_tokenizer();
    const auto root = std::filesystem::temp_directory_path() / "cdrmix_ckpt_test";
    cdrmix::remove_tree(root);
    std::filesystem::create_directories(root);
    const std::string path = cdrmix::save_checkpoint(root.string(), 42, *m, *opt, *tok, Json{{"step", 42}});
    EXPECT_EQ(std::filesystem::path(path).filename(), "step-000042");
    EXPECT_TRUE(std::filesystem::is_symlink(root / "latest"));
    for (const char *f : {"model.safetensors", "model.json", "tokenizer.json", "trainer_state.json", "optimizer.pt"})
        EXPECT_TRUE(std::filesystem::is_regular_file(root / "latest" / f)) << f;

    auto fresh = tiny_model();
    cdrmix::load_model_weights(*fresh, (root / "latest").string());
    Tensor tokens = torch::randint(0, 11, {1, 7}, torch::kInt64);
    m->eval();
    fresh->eval();
    cdrmix::ForwardContext c1, c2;
    EXPECT_LT(max_abs_diff(m->forward(tokens, nullptr, c1), fresh->forward(tokens, nullptr, c2)), 1e-7);

    std::filesystem::resize_file(root / "latest" / "model.safetensors", 100);
    EXPECT_THROW(cdrmix::load_model_weights(*fresh, (root / "latest").string()), cdrmix::Error);
}

TEST(Sampler, GreedyTopKAndTopP) {
    torch::Generator gen = at::detail::createCPUGenerator(1);
    Tensor logits = torch::tensor({0.0, 3.0, 1.0, 2.9});
    cdrmix::SampleOptions greedy;
    greedy.temperature = 0;
    EXPECT_EQ(cdrmix::sample_token(logits, greedy, gen), 1);
    cdrmix::SampleOptions top2;
    top2.top_k = 2;
    cdrmix::SampleOptions nucleus;
    nucleus.top_p = 0.5; // token 1 alone holds ~45%, with token 3 the mass passes 0.5
    for (int i = 0; i < 50; ++i) {
        const int64_t a = cdrmix::sample_token(logits, top2, gen), b = cdrmix::sample_token(logits, nucleus, gen);
        EXPECT_TRUE(a == 1 || a == 3);
        EXPECT_TRUE(b == 1 || b == 3);
    }
}

TEST(Sampler, GenerateStreamsText) {
    auto m = tiny_model();
    auto tok = cdrmix::make_char_tokenizer("abcdefghijk");
    std::string streamed;
    cdrmix::SampleOptions o;
    o.max_tokens = 20;
    std::string text = cdrmix::generate(*m, *tok, "abc", o, [&](const std::string &s) { streamed += s; });
    EXPECT_EQ(text, streamed);
    EXPECT_EQ(tok->encode(text).size(), 20u);
}
