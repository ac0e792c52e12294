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
#include <fstream>

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
        EXPECT_STREQ(e.what(), "model (m.yaml): unknown key 'num_layer'; did you mean 'num_layers'?");
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
    EXPECT_TRUE(out.routing.empty()); // nothing recorded unless asked
    ASSERT_EQ(m->loss(batch, /*record_routing=*/true).routing.size(), 1u);
}

namespace {

std::string spec_error(const Json &spec) {
    try {
        std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "m.yaml"), cdrmix::Registry::global());
    } catch (const cdrmix::Error &e) {
        return e.what();
    }
    return "(no error)";
}

const cdrmix::Router &router_of(const cdrmix::Model &m) {
    for (const auto &mod : m.modules())
        if (auto r = std::dynamic_pointer_cast<cdrmix::Router>(mod)) return *r;
    throw std::runtime_error("no router");
}

} // namespace

TEST(RouterSeam, TheMoELayerDecidesTopKOnce) {
    Json spec = tiny_spec();
    spec["top_k"] = 2;
    spec["router"] = {{"type", "topk"}, {"top_k", 4}};
    const std::string msg = spec_error(spec);
    EXPECT_NE(msg.find("top_k is 4 in the router table but 2 on the MoE layer"), std::string::npos) << msg;
    // switch wants one expert per token: it gets it when the model does not say otherwise...
    spec = tiny_spec();
    spec.erase("top_k");
    spec["router"] = {{"type", "switch"}};
    auto sw = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "m.yaml"), cdrmix::Registry::global());
    EXPECT_EQ(router_of(*sw).top_k(), 1);
    // ...and a contradiction is an error naming top_k.
    spec["top_k"] = 2;
    EXPECT_NE(spec_error(spec).find("top_k"), std::string::npos);
    // A router built with a context honours it.
    spec = tiny_spec();
    spec["top_k"] = 3;
    spec["num_experts"] = 4;
    auto k3 = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "m.yaml"), cdrmix::Registry::global());
    EXPECT_EQ(router_of(*k3).top_k(), 3);
    Tensor batch = torch::randint(0, 11, {2, 9}, torch::kInt64);
    EXPECT_EQ(k3->loss(batch, true).routing.at(0).indices.size(1), 3);
}

// The step's statistics from routing records equal a plain computation of the
// same quantities, micro-batches pooled.
TEST(RouterStats, FromRecordsEqualAPlainComputation) {
    torch::manual_seed(3);
    const int64_t E = 4;
    std::vector<cdrmix::RoutingRecord> records;
    std::vector<int64_t> counts(E, 0);
    int64_t dropped = 0;
    double entropy = 0, tokens = 0, lb = 0;
    for (int micro = 0; micro < 2; ++micro) {
        Tensor probs = torch::softmax(torch::randn({6, E}, torch::kFloat64), -1);
        Tensor idx = std::get<1>(probs.topk(2, -1));
        idx[0][0] = -1; // a capacity drop
        idx[0][1] = -1; // token 0 lost every slot
        idx[3][1] = -1;
        const double loss = 0.01 * (micro + 1);
        records.push_back({1, E, idx, probs, {{"load_balance", torch::tensor(loss, torch::kFloat64)}}});
        for (int64_t n = 0; n < 6; ++n) {
            bool any = false;
            for (int64_t j = 0; j < 2; ++j) {
                const int64_t e = idx[n][j].item<int64_t>();
                if (e >= 0) ++counts[static_cast<size_t>(e)], any = true;
            }
            if (!any) ++dropped;
            for (int64_t e = 0; e < E; ++e) {
                const double p = probs[n][e].item<double>();
                entropy -= p * std::log(p);
            }
            ++tokens;
        }
        lb += loss / 2;
    }
    const auto stats = cdrmix::compute_router_stats(records);
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_EQ(stats[0].layer, 1);
    EXPECT_EQ(stats[0].tokens_per_expert, counts);
    EXPECT_EQ(stats[0].dropped_tokens, dropped);
    EXPECT_NEAR(stats[0].token_entropy, entropy / tokens / std::log(double(E)), 1e-12);
    double total = 0, h = 0, var = 0;
    for (int64_t c : counts) total += double(c);
    for (int64_t c : counts) {
        const double q = double(c) / total;
        if (q > 0) h -= q * std::log(q);
        var += (double(c) - total / E) * (double(c) - total / E);
    }
    EXPECT_NEAR(stats[0].load_entropy, h / std::log(double(E)), 1e-12);
    EXPECT_NEAR(stats[0].load_cv, std::sqrt(var / E) / (total / E), 1e-12);
    ASSERT_EQ(stats[0].losses.size(), 1u);
    EXPECT_NEAR(stats[0].losses[0].second, lb, 1e-12);
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

// A checkpoint is checked before it is used: every file against its manifest,
// the weights for NaN and infinities, the optimiser state against the shapes
// of the parameters it is loaded into. Leftovers of a killed save go, and a
// dangling `latest` falls back to the newest complete checkpoint.
TEST(Model, CheckpointsAreVerifiedBeforeUse) {
    namespace fs = std::filesystem;
    auto m = tiny_model();
    auto opt = cdrmix::make_adamw(*m, 1e-3, 0.1, 0.9, 0.99, 1e-8);
    m->loss(torch::randint(0, 11, {2, 9}, torch::kInt64)).total.backward();
    opt->step(); // moments to save
    auto tok = cdrmix::make_byte_tokenizer();
    const fs::path root = cdrmix::test::scratch_dir("ckpt_verify");
    const fs::path first = cdrmix::save_checkpoint(root.string(), 1, *m, *opt, *tok, Json{{"step", 1}});
    EXPECT_TRUE(fs::is_regular_file(first / "manifest.json"));
    EXPECT_NO_THROW(cdrmix::verify_checkpoint(first.string()));

    // One flipped byte in the middle of the weights: named, before anything loads.
    const fs::path second = cdrmix::save_checkpoint(root.string(), 2, *m, *opt, *tok, Json{{"step", 2}});
    {
        std::fstream f(second / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(std::streamoff(fs::file_size(second / "model.safetensors") / 2));
        f.put('\x5a');
    }
    std::string error = cdrmix::test::error_of([&] { cdrmix::verify_checkpoint(second.string()); });
    EXPECT_NE(error.find("model.safetensors: does not match the checkpoint's manifest"), std::string::npos) << error;
    error = cdrmix::test::error_of([&] { cdrmix::load_checkpoint(second.string(), cdrmix::Registry::global()); });
    EXPECT_NE(error.find("does not match the checkpoint's manifest"), std::string::npos) << error;

    // NaN weights: refused with the tensor's name.
    auto broken = tiny_model();
    {
        torch::NoGradGuard no_grad;
        broken->named_parameters()["head.weight"].index_put_({0, 0}, std::nan(""));
    }
    const fs::path nan_dir = cdrmix::save_checkpoint(root.string(), 3, *broken, *opt, *tok, Json{{"step", 3}});
    error = cdrmix::test::error_of([&] { cdrmix::load_model_weights(*tiny_model(), nan_dir.string()); });
    EXPECT_NE(error.find("tensor 'head.weight' holds NaN or infinite values"), std::string::npos) << error;

    // Moments of another model with as many parameters: named, never stepped.
    Json other = tiny_spec();
    other["hidden_size"] = 8;
    other["mixer"]["head_size"] = 8;
    auto wide = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(other, "test"), cdrmix::Registry::global());
    auto wide_opt = cdrmix::make_adamw(*wide, 1e-3, 0.1, 0.9, 0.99, 1e-8);
    if (wide->parameters().size() == m->parameters().size()) {
        error = cdrmix::test::error_of([&] { cdrmix::load_optimizer_state(*wide_opt, first.string()); });
        EXPECT_NE(error.find("the optimiser state belongs to another model"), std::string::npos) << error;
    } else {
        ADD_FAILURE() << "the two models must have as many parameters for this check";
    }

    // A killed save's temporary folder is removed by the next save; a dangling
    // `latest` resolves to the newest complete checkpoint.
    fs::create_directories(root / ".tmp-step-000004");
    cdrmix::save_checkpoint(root.string(), 5, *m, *opt, *tok, Json{{"step", 5}});
    EXPECT_FALSE(fs::exists(root / ".tmp-step-000004"));
    cdrmix::remove_tree(root / "step-000005");
    EXPECT_EQ(fs::path(cdrmix::resolve_checkpoint(root.string())).filename(), "step-000003");
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

// The JSONL reader's fuzz finding (a number beyond a double escaping as nlohmann's out_of_range), in checkpoints.
TEST(Model, CheckpointJsonWithANumberBeyondADoubleIsOneLineError) {
    const auto dir = cdrmix::test::scratch_dir("fuzz_checkpoint_json");
    std::ofstream(dir / "trainer_state.json") << "{\"step\": 1e999}";
    const std::string msg = cdrmix::test::error_of([&] { cdrmix::read_checkpoint_json(dir.string(), "trainer_state.json"); });
    EXPECT_EQ(msg.rfind((dir / "trainer_state.json").string() + ": malformed JSON: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}
