// Expert-at-a-time training (train.expert_at_a_time, train/expert_rotation):
// only the active expert of each MoE layer changes, the active index follows
// (s / N) mod E, a frozen expert's AdamW state comes back bit for bit, resume
// across a switch is exact, the unsupported combinations are refused, and
// memory and optimiser state are lower than training every expert at once.
#include "core/memory_tracker.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"
#include "train/expert_rotation.hpp"
#include "train/fused_adamw.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

namespace fs = std::filesystem;
using cdrmix::Json;
using torch::Tensor;

namespace {

fs::path scratch(const std::string &name) { return cdrmix::test::scratch_dir("rotation_" + name); }

std::shared_ptr<cdrmix::DataSource> text_source(const fs::path &dir) {
    const fs::path file = dir / "corpus.txt";
    std::ofstream out(file);
    for (int i = 0; i < 60; ++i)
        out << "The quick brown fox " << i << " jumps over the lazy dog; pack my box with five dozen jugs.\n";
    out.close();
    Json cfg = {{"type", "text"}, {"path", file.string()}, {"tokenizer", "char"}, {"val_fraction", 0.1}};
    return cdrmix::Registry::global().create_data_source(cdrmix::Config(cfg, "data", "test"));
}

// 4 layers, MoE FFNs in two of them (3 experts, top-2); `experts`/`expansion` for the memory test.
std::shared_ptr<cdrmix::Model> make_model(int64_t vocab, uint64_t seed, bool moe = true, int64_t experts = 3,
                                          int64_t expansion = 2, int64_t hidden = 32) {
    Json spec = cdrmix::test::tiny_model_spec(vocab);
    spec["num_layers"] = 4;
    spec["hidden_size"] = hidden;
    if (moe) {
        spec["moe_every"] = 2;
        spec["num_experts"] = experts;
        spec["top_k"] = 2;
        spec["expert"] = {{"type", "rwkv_channel_mix"}, {"expansion", expansion}};
    }
    torch::manual_seed(seed);
    return std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
}

cdrmix::TrainConfig rotating_config(int64_t steps, int64_t switch_every) {
    cdrmix::TrainConfig c = cdrmix::TrainConfig::defaults();
    c.steps = steps;
    c.batch_size = 4;
    c.seq_len = 16;
    c.schedule.lr = 3e-3;
    c.schedule.min_lr = 3e-4;
    c.schedule.warmup_steps = 2;
    c.schedule.total_steps = steps;
    c.eval_every = 0;
    c.eval_batches = 2;
    c.expert_at_a_time = true;
    c.expert_switch_every = switch_every;
    return c;
}

std::map<std::string, Tensor> snapshot(cdrmix::Model &m) {
    std::map<std::string, Tensor> s;
    for (const auto &p : m.named_parameters()) s[p.key()] = p.value().detach().clone();
    return s;
}

bool expert_unchanged(const cdrmix::MoeLayerExperts &layer, size_t e, const std::map<std::string, Tensor> &a,
                      const std::map<std::string, Tensor> &b) {
    for (const auto &np : layer.experts[e])
        if (!torch::equal(a.at(np.first), b.at(np.first))) return false;
    return true;
}

std::vector<double> losses_of(cdrmix::Trainer &t, int64_t stop_after = -1) {
    std::vector<double> losses;
    cdrmix::TrainCallbacks cb;
    cb.on_step = [&](const Json &r) {
        losses.push_back(r["loss"].get<double>());
        return r["step"].get<int64_t>() != stop_after;
    };
    t.run(cb);
    return losses;
}

} // namespace

// Seven steps switching every 2 (experts 0,0,1,1,2,2,0: through a wrap-around):
// in every step each MoE layer's active expert changes, every other expert is
// bit-identical, and the shared parts (embedding, routers) change.
TEST(ExpertRotation, OnlyTheActiveExpertTrainsAndFollowsTheSchedule) {
    const fs::path dir = scratch("active");
    cdrmix::MetricsBus bus;
    auto data = text_source(dir);
    auto model = make_model(data->tokenizer()->vocab_size(), 5);
    cdrmix::Trainer t(model, data, rotating_config(7, 2), bus, "");
    const cdrmix::ExpertRotation &rotation = *t.expert_rotation();
    ASSERT_EQ(rotation.layers().size(), 2u);
    auto before = snapshot(*model);
    std::vector<int64_t> actives;
    cdrmix::TrainCallbacks cb;
    cb.on_step = [&](const Json &r) {
        const int64_t s = r["step"].get<int64_t>() - 1; // the 0-based step just taken
        const auto after = snapshot(*model);
        for (size_t i = 0; i < rotation.layers().size(); ++i) {
            const auto &layer = rotation.layers()[i];
            const int64_t want = (s / 2) % int64_t(layer.experts.size());
            EXPECT_EQ(rotation.active(i), want) << "step " << s;
            if (i == 0) actives.push_back(rotation.active(i));
            for (size_t e = 0; e < layer.experts.size(); ++e)
                EXPECT_EQ(expert_unchanged(layer, e, before, after), int64_t(e) != want)
                    << "step " << s << " layer " << layer.layer << " expert " << e;
        }
        EXPECT_FALSE(torch::equal(before.at("emb.weight"), after.at("emb.weight"))) << "step " << s;
        bool router_changed = false;
        for (const auto &[name, value] : after)
            if (name.find(".ffn.router.") != std::string::npos && !torch::equal(before.at(name), value))
                router_changed = true;
        EXPECT_TRUE(router_changed) << "step " << s;
        before = after;
        return true;
    };
    t.run(cb);
    EXPECT_EQ(actives, (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 0}));
}

// An expert switched out leaves the optimiser (its file holds the state) and
// has neither gradient nor requires_grad; switched in again, its moments and
// step counts are those it left with, bit for bit. The optimiser holds state
// for one expert per layer at a time.
TEST(ExpertRotation, MomentsSurviveASwitchOutAndIn) {
    const fs::path dir = scratch("moments");
    torch::manual_seed(3);
    auto model = make_model(40, 5);
    auto opt = cdrmix::make_adamw(*model, 1e-3, 0.1, 0.9, 0.99, 1e-8);
    std::optional<cdrmix::ExpertRotation> held;
    cdrmix::ExpertRotation &rotation = held.emplace(*model, 1);
    const Tensor batch = torch::randint(0, 40, {4, 17}, torch::kInt64);
    auto train = [&] {
        model->zero_grad(true);
        model->loss(batch).total.backward();
        opt->step();
    };
    auto experts_with_state = [&](const cdrmix::MoeLayerExperts &layer) {
        int n = 0;
        for (const auto &expert : layer.experts) n += cdrmix::param_state(*opt, expert.front().second) != nullptr;
        return n;
    };
    const auto &layer = rotation.layers()[0];
    ASSERT_EQ(layer.experts.size(), 3u);
    train(); // step 0: expert 0
    struct Saved {
        Tensor avg, sq;
        int64_t step;
    };
    std::map<std::string, Saved> left;
    for (const auto &[name, p] : layer.experts[0]) {
        const auto &s = static_cast<torch::optim::AdamWParamState &>(*cdrmix::param_state(*opt, p));
        left[name] = {s.exp_avg().clone(), s.exp_avg_sq().clone(), int64_t(s.step())};
    }
    rotation.advance(1, *opt, dir.string());
    for (const auto &[name, p] : layer.experts[0]) {
        EXPECT_EQ(cdrmix::param_state(*opt, p), nullptr) << name;
        EXPECT_FALSE(p.requires_grad()) << name;
        EXPECT_FALSE(p.grad().defined()) << name;
    }
    EXPECT_TRUE(fs::is_regular_file(fs::path(rotation.spill_dir()) / cdrmix::expert_moments_file(layer.layer, 0)));
    EXPECT_EQ(rotation.spill_dir().rfind(dir.string(), 0), 0u) << rotation.spill_dir();
    train(); // step 1: expert 1
    for (const auto &l : rotation.layers()) EXPECT_EQ(experts_with_state(l), 1);
    rotation.advance(2, *opt, dir.string());
    train(); // step 2: expert 2
    rotation.advance(3, *opt, dir.string()); // expert 0 again
    for (const auto &[name, p] : layer.experts[0]) {
        EXPECT_TRUE(p.requires_grad()) << name;
        auto *s = cdrmix::param_state(*opt, p);
        ASSERT_NE(s, nullptr) << name;
        const auto &a = static_cast<torch::optim::AdamWParamState &>(*s);
        EXPECT_TRUE(torch::equal(a.exp_avg(), left[name].avg)) << name;
        EXPECT_TRUE(torch::equal(a.exp_avg_sq(), left[name].sq)) << name;
        EXPECT_EQ(int64_t(a.step()), left[name].step) << name;
    }
    for (const auto &l : rotation.layers()) EXPECT_EQ(experts_with_state(l), 1);
    const std::string spill = rotation.spill_dir();
    const auto experts = layer.experts;
    held.reset(); // the scratch folder goes, and every expert trains again
    EXPECT_FALSE(fs::exists(spill));
    for (const auto &expert : experts) EXPECT_TRUE(expert.front().second.requires_grad());
}

// Seven steps straight, against three steps, a checkpoint (expert 1 active,
// expert 0's moments spilled) and a resume in a fresh model and data source
// that then switches to expert 2 and back to expert 0: bitwise-equal losses.
TEST(ExpertRotation, ResumeAcrossASwitchIsBitwise) {
    const fs::path dir = scratch("resume");
    cdrmix::MetricsBus bus;
    const int64_t steps = 7, stop_at = 3;
    auto data_a = text_source(dir);
    const int64_t vocab = data_a->tokenizer()->vocab_size();
    cdrmix::Trainer a(make_model(vocab, 5), data_a, rotating_config(steps, 2), bus, "");
    const std::vector<double> full = losses_of(a);
    ASSERT_EQ(full.size(), size_t(steps));

    const std::string root = (dir / "ckpt").string();
    cdrmix::Trainer b(make_model(vocab, 5), text_source(dir), rotating_config(steps, 2), bus, root);
    const std::vector<double> first = losses_of(b, stop_at);
    ASSERT_EQ(first.size(), size_t(stop_at));
    for (int64_t i = 0; i < stop_at; ++i) EXPECT_EQ(first[i], full[i]) << "step " << i + 1;
    const std::string ckpt = b.last_checkpoint();
    for (const auto &layer : b.expert_rotation()->layers()) {
        EXPECT_TRUE(fs::is_regular_file(fs::path(ckpt) / cdrmix::expert_moments_file(layer.layer, 0)));
        EXPECT_FALSE(fs::exists(fs::path(ckpt) / cdrmix::expert_moments_file(layer.layer, 1))); // in optimizer.pt
        EXPECT_FALSE(fs::exists(fs::path(ckpt) / cdrmix::expert_moments_file(layer.layer, 2))); // never trained
    }
    const Json manifest = cdrmix::read_checkpoint_json(ckpt, "manifest.json");
    EXPECT_TRUE(manifest["files"].contains(cdrmix::expert_moments_file(b.expert_rotation()->layers()[0].layer, 0)));

    torch::manual_seed(12345);
    cdrmix::Trainer c(make_model(vocab, 99), text_source(dir), rotating_config(steps, 2), bus, root);
    c.resume(ckpt);
    EXPECT_EQ(c.expert_rotation()->active(0), 1);
    const std::vector<double> rest = losses_of(c);
    ASSERT_EQ(rest.size(), size_t(steps - stop_at));
    for (int64_t i = 0; i < steps - stop_at; ++i)
        EXPECT_EQ(rest[i], full[stop_at + i]) << "step " << stop_at + i + 1; // bitwise
}

// Checkpoints move between the modes: one written expert at a time resumes
// without it (every expert that trained gets its moments back from its file),
// and one written with every expert at once resumes with it (what is frozen
// now is spilled at once, so the optimiser holds one expert per layer).
TEST(ExpertRotation, CheckpointsMoveBetweenModes) {
    const fs::path dir = scratch("modes");
    cdrmix::MetricsBus bus;
    auto data = text_source(dir);
    const int64_t vocab = data->tokenizer()->vocab_size();
    cdrmix::TrainConfig rotating = rotating_config(3, 2); // experts 0, 0, 1: expert 2 never trains
    cdrmix::TrainConfig all = rotating;
    all.expert_at_a_time = false;
    cdrmix::Trainer a(make_model(vocab, 5), text_source(dir), rotating, bus, (dir / "rotating").string());
    a.run();
    cdrmix::Trainer b(make_model(vocab, 5), text_source(dir), all, bus, (dir / "all").string());
    b.run();
    // AdamW state bytes of every parameter except the given experts of each MoE layer.
    auto state_bytes = [](cdrmix::Model &m, const std::vector<int64_t> &without) {
        int64_t bytes = 0;
        for (const auto &p : m.parameters()) bytes += 2 * p.numel() * int64_t(p.element_size());
        for (const auto &layer : cdrmix::find_routed_experts(m))
            for (int64_t e : without)
                for (const auto &np : layer.experts[size_t(e)]) bytes -= 2 * np.second.numel() * int64_t(np.second.element_size());
        return bytes;
    };

    auto model_c = make_model(vocab, 99);
    cdrmix::Trainer c(model_c, text_source(dir), rotating_config(6, 2), bus, "");
    c.resume(b.last_checkpoint()); // every expert at once -> expert 1 active at step 3
    EXPECT_EQ(c.optimizer_state_bytes(), state_bytes(*model_c, {0, 2}));
    for (const auto &layer : c.expert_rotation()->layers())
        for (int64_t e : {0, 2})
            EXPECT_TRUE(fs::is_regular_file(fs::path(c.expert_rotation()->spill_dir()) /
                                            cdrmix::expert_moments_file(layer.layer, e)));

    auto model_d = make_model(vocab, 99);
    cdrmix::TrainConfig longer = all;
    longer.steps = longer.schedule.total_steps = 6;
    cdrmix::Trainer d(model_d, text_source(dir), longer, bus, "");
    d.resume(a.last_checkpoint()); // expert at a time -> every expert: 0 and 1 trained, 2 never
    EXPECT_EQ(d.optimizer_state_bytes(), state_bytes(*model_d, {2}));
}

TEST(ExpertRotation, RefusesWhatItDoesNotSupport) {
    using cdrmix::test::error_of;
    const Json both = {{"expert_at_a_time", true}, {"shard_optimizer", true}};
    const std::string shard = error_of([&] { cdrmix::TrainConfig::from_config(cdrmix::Config(both, "train", "test")); });
    EXPECT_NE(shard.find("expert_at_a_time does not combine with shard_optimizer (ZeRO-1)"), std::string::npos) << shard;
    EXPECT_EQ(shard.find('\n'), std::string::npos) << shard;
    const Json zero = {{"expert_at_a_time", true}, {"expert_switch_every", 0}};
    const std::string every = error_of([&] { cdrmix::TrainConfig::from_config(cdrmix::Config(zero, "train", "test")); });
    EXPECT_NE(every.find("expert_switch_every"), std::string::npos) << every;

    const fs::path dir = scratch("refuse");
    cdrmix::MetricsBus bus;
    auto data = text_source(dir);
    const int64_t vocab = data->tokenizer()->vocab_size();
    EXPECT_EQ(error_of([&] { cdrmix::Trainer(make_model(vocab, 5, false), data, rotating_config(2, 1), bus, ""); }),
              "train.expert_at_a_time: the model has no MoE layer (no parameters named blocks.L.ffn.experts.E.*)");
    cdrmix::Trainer t(make_model(vocab, 5), data, rotating_config(2, 1), bus, "");
    EXPECT_EQ(error_of([&] { t.swap_router(-1, {{"type", "sinkhorn"}}, cdrmix::Registry::global()); }),
              "swap_router: not with train.expert_at_a_time");
}

// Peak live CPU bytes (core/memory_tracker) over four training steps of a
// model whose experts hold most parameters (2 MoE layers of 8 experts, 8x wide),
// every expert at once against one at a time, and the optimiser state after them.
TEST(ExpertRotation, PeakMemoryAndOptimizerStateAreLower) {
    const fs::path dir = scratch("memory");
    cdrmix::MemoryTracker tracker;
    cdrmix::MetricsBus bus;
    auto data = text_source(dir);
    const int64_t vocab = data->tokenizer()->vocab_size();
    struct Figures {
        int64_t weights, peak, optimizer;
    };
    auto measure = [&](bool one_at_a_time) {
        Figures f{};
        auto model = make_model(vocab, 7, true, 8, 8, 64);
        for (const auto &p : model->parameters()) f.weights += p.numel() * int64_t(p.element_size());
        cdrmix::TrainConfig c = rotating_config(4, 2);
        c.expert_at_a_time = one_at_a_time;
        cdrmix::Trainer t(model, data, c, bus, "");
        data->reset(cdrmix::Split::Train);
        cdrmix::MemoryTracker::reset_peak();
        const int64_t before = cdrmix::MemoryTracker::live_bytes();
        t.run();
        f.peak = cdrmix::MemoryTracker::peak_bytes() - before;
        f.optimizer = t.optimizer_state_bytes();
        return f;
    };
    const Figures all = measure(false);
    const Figures one = measure(true);
    auto mib = [](int64_t b) { return double(b) / (1 << 20); };
    std::printf("[ memory  ] 4 layers (2 MoE of 8 experts, 8x wide), hidden 64, weights %.2f MiB; over 4 steps of "
                "4 x 16 tokens, peak above the weights: all experts %.2f MiB, one at a time %.2f MiB (%.2fx); "
                "AdamW state: %.2f MiB, %.2f MiB (%.2fx)\n",
                mib(all.weights), mib(all.peak), mib(one.peak), double(one.peak) / double(all.peak), mib(all.optimizer),
                mib(one.optimizer), double(one.optimizer) / double(all.optimizer));
    EXPECT_LT(one.peak, all.peak);
    EXPECT_LT(one.optimizer, all.optimizer);
}
