// Activation checkpointing (model/activation_checkpoint.hpp): a checkpointed
// model's loss, auxiliary losses, routing records, gradients, buffers and
// random stream equal the plain model's, and its peak memory in backward is lower.
#include "core/memory_tracker.hpp"
#include "model/model.hpp"
#include "test_util.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>

#include <cstdio>
#include <map>

using cdrmix::ActivationCheckpointing;
using cdrmix::Json;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

constexpr int64_t kVocab = 13;

std::shared_ptr<cdrmix::Model> build(const Json &spec, torch::Dtype dtype, uint64_t seed) {
    torch::manual_seed(seed);
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    m->to(dtype);
    cdrmix::test::perturb(*m, 0.05, seed + 1);
    return m;
}

// An RWKV-7 model with MoE layers 1 and 2; `router` decides what the routers
// do in the forward pass beyond arithmetic (jitter draws random numbers,
// aux_free updates a buffer).
Json rwkv7_moe_spec(const Json &router) {
    Json s = cdrmix::test::tiny_model_spec(kVocab);
    s["hidden_size"] = 16;
    s["num_layers"] = 3;
    s["mixer"]["head_size"] = 8;
    s["moe_every"] = 1;
    s["first_dense_layers"] = 1;
    s["num_experts"] = 4;
    s["top_k"] = 2;
    s["num_shared_experts"] = 1;
    s["router"] = router;
    return s;
}

struct StepOutcome {
    double loss = 0;
    std::vector<std::pair<std::string, double>> aux;
    size_t routing_records = 0;
    std::map<std::string, Tensor> grads, buffers;
    double next_random = 0; // the default generator's next draw after the step
};

StepOutcome step(cdrmix::Model &m, const ActivationCheckpointing &c, const Tensor &batch, uint64_t seed) {
    m.set_activation_checkpointing(c);
    m.zero_grad(/*set_to_none=*/true);
    torch::manual_seed(seed);
    cdrmix::LossOutput out = m.loss(batch, /*record_routing=*/true);
    out.total.backward();
    StepOutcome r;
    r.loss = out.total.item<double>();
    for (const auto &a : out.aux) r.aux.emplace_back(a.name, a.value.item<double>());
    r.routing_records = out.routing.size();
    for (const auto &p : m.named_parameters())
        if (p.value().grad().defined()) r.grads[p.key()] = p.value().grad().clone();
    for (const auto &b : m.named_buffers()) r.buffers[b.key()] = b.value().clone();
    r.next_random = torch::rand({1}, torch::kFloat64).item<double>();
    return r;
}

ActivationCheckpointing mode(const std::string &name, int64_t every = 2) {
    return ActivationCheckpointing::parse(name, every, "test");
}

// Trains `spec` one step plain and one step checkpointed from the same weights,
// and expects the same everything (float64; only summation order may differ).
void expect_same_step(const Json &spec, const ActivationCheckpointing &c) {
    auto plain = build(spec, torch::kFloat64, 5);
    auto checkpointed = build(spec, torch::kFloat64, 5);
    plain->train();
    checkpointed->train();
    torch::manual_seed(9);
    const Tensor batch = torch::randint(0, kVocab, {2, 17}, torch::kInt64);
    const StepOutcome a = step(*plain, mode("none"), batch, 77);
    const StepOutcome b = step(*checkpointed, c, batch, 77);
    EXPECT_NEAR(a.loss, b.loss, 1e-12);
    ASSERT_EQ(a.aux.size(), b.aux.size()); // published once, not again by the recomputation
    for (size_t i = 0; i < a.aux.size(); ++i) {
        EXPECT_EQ(a.aux[i].first, b.aux[i].first);
        EXPECT_NEAR(a.aux[i].second, b.aux[i].second, 1e-12) << a.aux[i].first;
    }
    EXPECT_EQ(a.routing_records, b.routing_records);
    ASSERT_EQ(a.grads.size(), b.grads.size());
    ASSERT_FALSE(a.grads.empty());
    for (const auto &[name, g] : a.grads) {
        ASSERT_TRUE(b.grads.count(name)) << name << " has no gradient when checkpointed";
        EXPECT_LT(max_abs_diff(g, b.grads.at(name)), 1e-11) << name;
    }
    for (const auto &[name, v] : a.buffers) EXPECT_LT(max_abs_diff(v, b.buffers.at(name)), 1e-12) << name;
    EXPECT_EQ(a.next_random, b.next_random); // the recomputation leaves the random stream where it was
}

} // namespace

TEST(ActivationCheckpoint, ParsesModesAndPicksLayers) {
    EXPECT_FALSE(mode("none").applies(0));
    EXPECT_TRUE(mode("all").applies(5));
    const ActivationCheckpointing k3 = mode("every_k", 3);
    EXPECT_TRUE(k3.applies(0));
    EXPECT_FALSE(k3.applies(1));
    EXPECT_TRUE(k3.applies(3));
    EXPECT_EQ(cdrmix::test::error_of([] { mode("some"); }),
              "test: key 'checkpoint_activations' must be \"none\", \"all\" or \"every_k\", got \"some\"");
}

TEST(ActivationCheckpoint, TrainKeysReachTheModel) {
    const auto c = cdrmix::TrainConfig::from_config(
        cdrmix::Config(Json{{"checkpoint_activations", "every_k"}, {"checkpoint_activations_every", 3}}, "train", "t.lua"));
    EXPECT_EQ(c.checkpoint_activations.mode, ActivationCheckpointing::Mode::EveryK);
    EXPECT_EQ(c.checkpoint_activations.every, 3);
    EXPECT_EQ(c.to_json().at("checkpoint_activations"), "every_k");
    EXPECT_NE(cdrmix::test::error_of([] {
                  cdrmix::TrainConfig::from_config(
                      cdrmix::Config(Json{{"checkpoint_activations", "al"}}, "train", "t.lua"));
              }).find("checkpoint_activations"),
              std::string::npos);
}

TEST(ActivationCheckpoint, Rwkv7MoeGradientsEqualPlainWithRouterJitter) {
    expect_same_step(rwkv7_moe_spec({{"type", "topk"}, {"jitter", 0.2}, {"z_loss", 1e-3}}), mode("all"));
}

TEST(ActivationCheckpoint, Rwkv7MoeGradientsEqualPlainWithAuxFreeBias) {
    expect_same_step(rwkv7_moe_spec({{"type", "aux_free"}, {"bias_update_rate", 0.01}, {"seq_aux_alpha", 0.01}}), mode("all"));
}

TEST(ActivationCheckpoint, EveryKMixesCheckpointedAndPlainLayers) {
    expect_same_step(rwkv7_moe_spec({{"type", "topk"}}), mode("every_k", 2));
}

TEST(ActivationCheckpoint, AttentionAndSwigluGradientsEqualPlain) {
    Json s = cdrmix::test::tiny_model_spec(kVocab);
    s["num_layers"] = 3;
    s["mixer"] = {{"type", "attention"}, {"num_heads", 4}};
    s["ffn"] = {{"type", "swiglu"}};
    expect_same_step(s, mode("all"));
}

TEST(ActivationCheckpoint, Mamba2HybridGradientsEqualPlain) {
    Json s = cdrmix::test::tiny_model_spec(kVocab);
    s["num_layers"] = 3;
    s["mamba"] = {{"type", "mamba2"}, {"d_state", 8}, {"head_dim", 16}, {"chunk_size", 8}};
    s["mamba_layers"] = Json::array({1});
    s["ffn"] = {{"type", "relu2"}};
    expect_same_step(s, mode("all"));
}

TEST(ActivationCheckpoint, Rwkv6AndMlaLayersGradientsEqualPlain) {
    Json s = cdrmix::test::tiny_model_spec(kVocab);
    s["num_layers"] = 2;
    s["layers"] = Json::array(
        {{{"mixer", {{"type", "rwkv6_time_mix"}, {"head_size", 16}, {"mix_lora", 8}, {"decay_lora", 8}}}},
         {{"mixer", {{"type", "mla"}, {"num_heads", 2}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8},
                     {"qk_rope_head_dim", 4}}}}});
    expect_same_step(s, mode("all"));
}

// The peak of live CPU bytes over one forward and backward, above what was live before.
int64_t peak_of_step(cdrmix::Model &m, const Tensor &batch) {
    m.zero_grad(/*set_to_none=*/true);
    const int64_t before = cdrmix::MemoryTracker::live_bytes();
    cdrmix::MemoryTracker::reset_peak();
    m.loss(batch).total.backward();
    return cdrmix::MemoryTracker::peak_bytes() - before;
}

TEST(ActivationCheckpoint, PeakMemoryIsLower) {
    cdrmix::MemoryTracker tracker;
    Json s = rwkv7_moe_spec({{"type", "topk"}});
    s["hidden_size"] = 64;
    s["num_layers"] = 6;
    s["mixer"]["head_size"] = 32;
    s["moe_every"] = 2;
    s["first_dense_layers"] = 0;
    auto m = build(s, torch::kFloat32, 11);
    m->train();
    torch::manual_seed(2);
    const Tensor batch = torch::randint(0, kVocab, {4, 257}, torch::kInt64);
    m->set_activation_checkpointing(mode("none"));
    peak_of_step(*m, batch); // gradients allocated once, so both measured steps start alike
    const int64_t plain = peak_of_step(*m, batch);
    m->set_activation_checkpointing(mode("all"));
    const int64_t all = peak_of_step(*m, batch);
    m->set_activation_checkpointing(mode("every_k", 2));
    const int64_t every2 = peak_of_step(*m, batch);
    std::printf("[ peak    ] forward + backward, 6 layers (3 MoE), hidden 64, batch 4 x 256: plain %.2f MiB, "
                "every_k 2 %.2f MiB (%.2fx), all %.2f MiB (%.2fx)\n",
                double(plain) / (1 << 20), double(every2) / (1 << 20), double(every2) / double(plain),
                double(all) / (1 << 20), double(all) / double(plain));
    EXPECT_LT(all, plain);
    EXPECT_LT(every2, plain);
    EXPECT_LT(all, every2);
}
