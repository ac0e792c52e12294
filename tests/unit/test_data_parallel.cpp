// Data parallelism in the stock trainer, with real process groups over
// loopback: each rank is a thread of this process with its own group. Two
// ranks with batch B match one rank with batch 2B (float64), with gradient
// accumulation too, with MoE experts that some rank leaves unused, and a
// two-rank checkpoint resumes at the same and at another world size.
#include "core/files.hpp"
#include "dist/expert_parallel.hpp"
#include "dist/gradient_sync.hpp"
#include "dist/model_sync.hpp"
#include "dist/thread_ranks.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

namespace fs = std::filesystem;
using cdrmix::Json;

namespace {

fs::path corpus(const fs::path &dir) {
    const fs::path file = dir / "corpus.txt";
    std::ofstream out(file);
    for (int i = 0; i < 80; ++i)
        out << "The quick brown fox " << i << " jumps over the lazy dog; pack my box with five dozen jugs.\n";
    return file;
}

std::shared_ptr<cdrmix::DataSource> source(const fs::path &file, int rank, int world) {
    Json cfg = {{"type", "text"},        {"path", file.string()}, {"tokenizer", "char"},
                {"val_fraction", 0.1},   {"rank", rank},          {"world_size", world}};
    return cdrmix::Registry::global().create_data_source(cdrmix::Config(cfg, "data", "test"));
}

// float64; the MoE variant has no load-balance loss (it depends on which
// tokens share a batch) and enough experts that a rank leaves some unused.
// `moe_keys` replace the MoE variant's keys (expert parallelism, routers).
std::shared_ptr<cdrmix::Model> model(int64_t vocab, bool moe, const Json &moe_keys = Json::object(),
                                     std::shared_ptr<cdrmix::ExpertGroup> experts = nullptr) {
    Json spec = cdrmix::test::tiny_model_spec(vocab);
    if (moe) {
        spec["moe_every"] = 2;
        spec["num_experts"] = 16;
        spec["top_k"] = 1;
        spec["load_balance_alpha"] = 0.0;
        spec["expert"] = {{"type", "rwkv_channel_mix"}, {"expansion", 2}};
        for (auto it = moe_keys.begin(); it != moe_keys.end(); ++it)
            if (it.value().is_null())
                spec.erase(it.key());
            else
                spec[it.key()] = it.value();
    }
    // Ranks build their models on threads of one process: one at a time, from the same seed.
    static std::mutex building;
    std::lock_guard<std::mutex> lock(building);
    torch::manual_seed(21);
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global(),
                                             std::move(experts));
    m->to(torch::kFloat64);
    return m;
}

// The expert groups a rank's model needs for its spec's expert_parallel (none
// for 1, or in one process, as cdrmix.model does).
std::shared_ptr<cdrmix::ExpertParallel> expert_groups(cdrmix::ProcessGroup &group, const Json &moe_keys) {
    const int64_t P = moe_keys.value("expert_parallel", int64_t(1));
    return P > 1 && group.world_size() > 1 ? std::make_shared<cdrmix::ExpertParallel>(group, P) : nullptr;
}

cdrmix::TrainConfig config(int64_t steps, int64_t batch, int64_t accum) {
    cdrmix::TrainConfig c = cdrmix::TrainConfig::defaults();
    c.steps = steps;
    c.batch_size = batch;
    c.grad_accum = accum;
    c.seq_len = 16;
    c.grad_clip = 0.5;
    c.schedule.lr = 3e-3;
    c.schedule.min_lr = 3e-4;
    c.schedule.warmup_steps = 2;
    c.schedule.total_steps = steps;
    c.eval_every = 0;
    c.eval_batches = 1;
    c.log_every = 1;
    return c;
}

void with_ranks(int world, int port, const std::function<void(cdrmix::ProcessGroup &)> &body) {
    cdrmix::run_thread_ranks(world, port, std::chrono::seconds(60), body);
}

struct Outcome {
    std::vector<double> losses;
    std::vector<Json> records;
    std::shared_ptr<cdrmix::Model> model;
    std::string checkpoint;
    int64_t state_bytes = 0; // AdamW moments held at the end
};

// A stock-trainer run of every rank; returns each rank's outcome.
std::vector<Outcome> train(int world, int port, const fs::path &file, bool moe, const cdrmix::TrainConfig &c,
                           const std::string &checkpoints = "", const std::string &resume = "",
                           int64_t stop_after = -1, const Json &moe_keys = Json::object()) {
    std::vector<Outcome> out(static_cast<size_t>(world));
    std::vector<std::shared_ptr<cdrmix::DataSource>> data;
    for (int r = 0; r < world; ++r) data.push_back(source(file, r, world));
    cdrmix::MetricsBus bus;
    auto body = [&](cdrmix::ProcessGroup &group) {
        Outcome &o = out[size_t(group.rank())];
        auto experts = expert_groups(group, moe_keys);
        o.model = model(data[size_t(group.rank())]->tokenizer()->vocab_size(), moe, moe_keys, experts);
        // Rank 1 starts from other weights: the trainer broadcasts rank 0's (or
        // resume loads them). Split experts have one holder: they stay as built.
        if (group.rank() > 0) {
            torch::NoGradGuard no_grad;
            for (auto &p : o.model->parameters())
                if (!experts || !experts->holds(p)) p.add_(0.01);
        }
        group.barrier(); // no rank trains while another still seeds the global generator to build its model
        cdrmix::Trainer t(o.model, data[size_t(group.rank())], c, bus, checkpoints);
        t.set_process_group(&group);
        if (!resume.empty()) t.resume(resume);
        cdrmix::TrainCallbacks cb;
        cb.on_step = [&](const Json &rec) {
            o.losses.push_back(rec["loss"].get<double>());
            o.records.push_back(rec);
            return rec["step"].get<int64_t>() != stop_after;
        };
        t.run(cb);
        o.checkpoint = t.last_checkpoint();
        o.state_bytes = t.optimizer_state_bytes();
    };
    if (world == 1) {
        cdrmix::DistEnv alone;
        cdrmix::ProcessGroup group(alone, std::chrono::seconds(5));
        body(group);
    } else {
        with_ranks(world, port, body);
    }
    return out;
}

double worst_difference(cdrmix::Model &a, cdrmix::Model &b) {
    auto pb = b.named_parameters();
    double worst = 0;
    for (const auto &p : a.named_parameters()) worst = std::max(worst, cdrmix::test::max_abs_diff(p.value(), pb[p.key()]));
    return worst;
}

void expect_same_run(const std::vector<Outcome> &ranks, const Outcome &alone) {
    ASSERT_EQ(ranks[0].losses.size(), alone.losses.size());
    for (size_t i = 0; i < alone.losses.size(); ++i)
        EXPECT_NEAR(ranks[0].losses[i], alone.losses[i], 1e-9) << "step " << i + 1;
    EXPECT_LT(worst_difference(*ranks[0].model, *alone.model), 1e-9);
    EXPECT_EQ(worst_difference(*ranks[0].model, *ranks[1].model), 0.0); // the ranks agree bitwise
    EXPECT_EQ(ranks[0].records, ranks[1].records); // every rank publishes the same aggregated records
}

} // namespace

TEST(DataParallel, TwoRanksOfBatchBEqualOneRankOfBatch2B) {
    const fs::path file = corpus(cdrmix::test::scratch_dir("dp_dense"));
    const auto two = train(2, 29740, file, false, config(10, 4, 1));
    const auto one = train(1, 0, file, false, config(10, 8, 1));
    expect_same_run(two, one[0]);
    // Aggregated records: tokens over both ranks, per-rank figures, the communication time.
    const Json &last = two[0].records.back();
    EXPECT_EQ(last["tokens"], one[0].records.back()["tokens"]);
    EXPECT_EQ(last["world_size"], 2);
    ASSERT_EQ(last["ranks"].size(), 2u);
    EXPECT_GT(last["ranks"][1]["tokens_per_s"].get<double>(), 0);
    EXPECT_GE(last["comm_s"].get<double>(), 0);
}

TEST(DataParallel, TwoRanksOfTwoMicroBatchesEqualOneRankOfFour) {
    const fs::path file = corpus(cdrmix::test::scratch_dir("dp_accum"));
    const auto two = train(2, 29741, file, false, config(10, 3, 2));
    const auto one = train(1, 0, file, false, config(10, 3, 4));
    expect_same_run(two, one[0]);
}

// Top-1 over 16 experts with 48 tokens per rank: some expert gets no token on
// one rank but some on the other, and experts no rank used keep no gradient.
TEST(DataParallel, MoeWithExpertsUnusedOnSomeRanks) {
    const fs::path file = corpus(cdrmix::test::scratch_dir("dp_moe"));
    const auto two = train(2, 29742, file, true, config(10, 3, 1));
    const auto one = train(1, 0, file, true, config(10, 6, 1));
    expect_same_run(two, one[0]);
    // Routing statistics count both ranks' tokens.
    const Json &moe2 = two[0].records.back()["moe"][0], &moe1 = one[0].records.back()["moe"][0];
    EXPECT_EQ(moe2["tokens_per_expert"], moe1["tokens_per_expert"]);
    EXPECT_NEAR(moe2["token_entropy"].get<double>(), moe1["token_entropy"].get<double>(), 1e-9);
}

TEST(DataParallel, CheckpointResumesAtTheSameAndAnotherWorldSize) {
    const fs::path dir = cdrmix::test::scratch_dir("dp_resume");
    const fs::path file = corpus(dir);
    const auto full = train(2, 29743, file, false, config(8, 4, 1));
    const auto first = train(2, 29744, file, false, config(8, 4, 1), (dir / "ckpt").string(), "", 4);
    ASSERT_FALSE(first[0].checkpoint.empty());
    EXPECT_EQ(first[1].checkpoint, first[0].checkpoint); // every rank knows where it is
    const Json state = cdrmix::read_checkpoint_json(first[0].checkpoint, "trainer_state.json");
    EXPECT_EQ(state["world_size"], 2);
    ASSERT_EQ(state["data_positions"].size(), 2u);

    const auto same = train(2, 29745, file, false, config(8, 4, 1), (dir / "ckpt2").string(), first[0].checkpoint);
    ASSERT_EQ(same[0].losses.size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(same[0].losses[i], full[0].losses[4 + i]) << "step " << 5 + i;
    EXPECT_EQ(worst_difference(*same[0].model, *full[0].model), 0.0);

    // One rank continues from the same weights and optimiser state (its data is
    // re-sharded, so its batches are not the two ranks' batches): steps 5..8, where training stood.
    const auto alone = train(1, 0, file, false, config(8, 8, 1), (dir / "ckpt3").string(), first[0].checkpoint);
    ASSERT_EQ(alone[0].losses.size(), 4u);
    EXPECT_EQ(alone[0].records.front()["step"], 5);
    EXPECT_LT(alone[0].losses[0], full[0].losses[0] - 0.5); // not a fresh start
}

// ZeRO-1: each rank keeps and updates the moments of its share of the
// parameters; the parameters equal unsharded AdamW's, with unused experts
// (no state yet) among them, and its checkpoints hold the whole state.
TEST(DataParallel, ShardedOptimizerEqualsAdamWAndResumesAnywhere) {
    const fs::path dir = cdrmix::test::scratch_dir("dp_zero");
    const fs::path file = corpus(dir);
    cdrmix::TrainConfig plain = config(10, 3, 1), sharded = plain;
    sharded.shard_optimizer = true;
    const auto a = train(2, 29747, file, true, plain);
    const auto z = train(2, 29748, file, true, sharded);
    for (size_t i = 0; i < a[0].losses.size(); ++i) EXPECT_EQ(z[0].losses[i], a[0].losses[i]) << "step " << i + 1;
    EXPECT_EQ(worst_difference(*z[0].model, *a[0].model), 0.0);
    EXPECT_EQ(worst_difference(*z[1].model, *a[0].model), 0.0);
    // Each rank holds its share of the moments, together all of them.
    EXPECT_LT(z[0].state_bytes, a[0].state_bytes * 3 / 4);
    EXPECT_LT(z[1].state_bytes, a[0].state_bytes * 3 / 4);
    EXPECT_EQ(z[0].state_bytes + z[1].state_bytes, a[0].state_bytes);

    // A sharded checkpoint at step 5 holds the whole state: resumed sharded, or
    // unsharded, on 2 ranks it continues the uninterrupted run bitwise.
    const auto first = train(2, 29749, file, true, sharded, (dir / "ckpt").string(), "", 5);
    const auto again = train(2, 29790, file, true, sharded, (dir / "ckpt2").string(), first[0].checkpoint);
    const auto unsharded = train(2, 29791, file, true, plain, (dir / "ckpt3").string(), first[0].checkpoint);
    for (const auto *run : {&again, &unsharded}) {
        ASSERT_EQ((*run)[0].losses.size(), 5u);
        for (size_t i = 0; i < 5; ++i) EXPECT_EQ((*run)[0].losses[i], a[0].losses[5 + i]) << "step " << 6 + i;
        EXPECT_EQ(worst_difference(*(*run)[0].model, *a[0].model), 0.0);
    }
    // ... and on one rank it continues from the same weights and state.
    const auto alone = train(1, 0, file, true, plain, (dir / "ckpt4").string(), first[0].checkpoint);
    ASSERT_EQ(alone[0].losses.size(), 5u);
    EXPECT_EQ(alone[0].records.front()["step"], 6);
}

// A rank that resumed from other weights than the others is an error, not a silent divergence.
TEST(DataParallel, RanksWithDifferentWeightsAreNamed) {
    std::vector<std::shared_ptr<cdrmix::Model>> models{model(20, false), model(20, false)};
    const auto changed = models[1]->named_parameters().pairs().back();
    {
        torch::NoGradGuard no_grad;
        changed.second.add_(1e-3);
    }
    std::vector<std::string> errors(2);
    with_ranks(2, 29746, [&](cdrmix::ProcessGroup &group) {
        std::vector<torch::Tensor> tensors;
        std::vector<std::string> names;
        for (const auto &p : models[size_t(group.rank())]->named_parameters()) {
            tensors.push_back(p.value());
            names.push_back(p.key());
        }
        errors[size_t(group.rank())] =
            cdrmix::test::error_of([&] { cdrmix::check_tensors_equal(group, tensors, names, "resuming"); });
    });
    for (const auto &e : errors) EXPECT_NE(e.find("different values of '" + changed.first + "'"), std::string::npos) << e;
}

// ---- expert parallelism -----------------------------------------------------------

namespace {

// What expert parallelism must reproduce, over 8 experts: dropless top-2 with
// a load-balance loss, expert choice, and top-2 under a capacity that drops
// slots, with a shared expert.
std::vector<std::pair<std::string, Json>> ep_variants() {
    return {{"topk", {{"num_experts", 8}, {"top_k", 2}, {"router", {{"type", "topk"}, {"load_balance_alpha", 0.01}}}}},
            {"expert_choice", {{"num_experts", 8}, {"load_balance_alpha", nullptr}, {"router", {{"type", "expert_choice"}}}}},
            {"capacity", {{"num_experts", 8}, {"top_k", 2}, {"capacity_factor", 0.5}, {"num_shared_experts", 1}}}};
}

Json split_over(Json keys, int64_t ranks) {
    keys["expert_parallel"] = ranks;
    return keys;
}

struct Pass {
    double loss = 0;
    torch::Tensor logits;
    std::vector<std::string> names;              // the parameters this rank holds
    std::map<std::string, torch::Tensor> grads;  // after the data-parallel reduction
    std::vector<cdrmix::RouterStats> stats;      // over both ranks' tokens
};

// One forward and backward of a 2-rank group, each rank on its own batch.
std::vector<Pass> one_pass(const Json &keys) {
    std::vector<Pass> out(2);
    with_ranks(2, 0, [&](cdrmix::ProcessGroup &group) {
        auto experts = expert_groups(group, keys);
        auto m = model(20, true, keys, experts);
        cdrmix::ModelSync sync(group, *m, experts.get());
        auto gen = at::detail::createCPUGenerator(100 + uint64_t(group.rank()));
        const torch::Tensor batch = torch::randint(20, {3, 17}, gen, torch::kInt64);
        Pass &p = out[size_t(group.rank())];
        cdrmix::ForwardContext ctx;
        p.logits = m->forward(batch.slice(1, 0, 16), nullptr, ctx).detach();
        cdrmix::LossOutput loss = m->loss(batch, /*record_routing=*/true);
        loss.total.backward();
        p.loss = loss.total.item<double>();
        for (const auto &param : m->named_parameters()) {
            p.names.push_back(param.key());
            if (param.value().grad().defined()) p.grads[param.key()] = param.value().grad().clone();
        }
        p.stats = cdrmix::compute_router_stats(
            loss.routing, [&](torch::Tensor &sums) { group.all_reduce(sums, cdrmix::ReduceOp::Sum); });
    });
    return out;
}

bool holds(const Pass &p, const std::string &prefix) {
    for (const auto &n : p.names)
        if (n.rfind(prefix, 0) == 0) return true;
    return false;
}

} // namespace

// Two ranks sharing each layer's 8 experts (4 each) compute what two ranks
// holding all 8 compute: outputs, losses, every gradient, routing statistics.
TEST(ExpertParallel, SplitExpertsEqualWholeExpertsForEveryRouter) {
    for (const auto &[name, keys] : ep_variants()) {
        SCOPED_TRACE(name);
        const auto whole = one_pass(keys), split = one_pass(split_over(keys, 2));
        for (size_t r = 0; r < 2; ++r) {
            EXPECT_NEAR(split[r].loss, whole[r].loss, 1e-12);
            EXPECT_LT(cdrmix::test::max_abs_diff(split[r].logits, whole[r].logits), 1e-12);
            // Rank r holds experts 4r..4r+3 of the MoE layer (blocks.1) and every dense parameter.
            EXPECT_TRUE(holds(split[r], "blocks.1.ffn.experts." + std::to_string(4 * r) + "."));
            EXPECT_FALSE(holds(split[r], "blocks.1.ffn.experts." + std::to_string(4 * (1 - r)) + "."));
            EXPECT_EQ(split[r].names.size(), whole[r].names.size() - 4 * 2); // 4 experts of 2 tensors fewer
            size_t expert_grads = 0;
            for (const auto &[param, g] : split[r].grads) {
                const auto it = whole[r].grads.find(param);
                ASSERT_NE(it, whole[r].grads.end()) << param;
                EXPECT_LT(cdrmix::test::max_abs_diff(g, it->second), 1e-12) << param;
                expert_grads += param.find(".experts.") != std::string::npos;
            }
            EXPECT_GT(expert_grads, 0u);
            for (const auto &[param, g] : whole[r].grads)
                if (param.find(".experts.") == std::string::npos) EXPECT_EQ(split[r].grads.count(param), 1u) << param;
            ASSERT_EQ(split[r].stats.size(), 1u);
            EXPECT_EQ(split[r].stats[0].tokens_per_expert, whole[r].stats[0].tokens_per_expert);
            EXPECT_EQ(split[r].stats[0].dropped_tokens, whole[r].stats[0].dropped_tokens);
            EXPECT_NEAR(split[r].stats[0].token_entropy, whole[r].stats[0].token_entropy, 1e-12);
        }
        if (name == "capacity") EXPECT_GT(whole[0].stats[0].dropped_tokens, 0); // the capacity did drop slots
    }
}

// The stock trainer with split experts follows the run with whole experts;
// its checkpoints hold the single-process model and resume split or whole.
TEST(ExpertParallel, TrainsAndCheckpointsInTheSingleProcessLayout) {
    const fs::path dir = cdrmix::test::scratch_dir("ep_train");
    const fs::path file = corpus(dir);
    const Json keys = ep_variants()[2].second, split = split_over(keys, 2);
    const cdrmix::TrainConfig c = config(6, 3, 1);
    const auto whole = train(2, 0, file, true, c, "", "", -1, keys);
    const auto two = train(2, 0, file, true, c, (dir / "ckpt").string(), "", -1, split);
    ASSERT_EQ(two[0].losses.size(), 6u);
    for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(two[0].losses[i], whole[0].losses[i], 1e-9) << "step " << i + 1;
    for (size_t r = 0; r < 2; ++r) EXPECT_LT(worst_difference(*two[r].model, *whole[0].model), 1e-9);
    EXPECT_EQ(two[0].records.back()["moe"], whole[0].records.back()["moe"]);
    EXPECT_EQ(two[0].records, two[1].records);

    // The checkpoint loads into one process holding every expert.
    auto alone = model(whole[0].model->spec().vocab_size, true, keys);
    cdrmix::load_model_weights(*alone, two[0].checkpoint);
    EXPECT_LT(worst_difference(*alone, *whole[0].model), 1e-9);
    EXPECT_LT(worst_difference(*whole[0].model, *alone), 1e-9);

    // Stopped at step 3, it resumes with split experts and with whole ones, where the run stood.
    const auto first = train(2, 0, file, true, c, (dir / "ckpt2").string(), "", 3, split);
    const auto again = train(2, 0, file, true, c, (dir / "ckpt3").string(), first[0].checkpoint, -1, split);
    const auto as_whole = train(2, 0, file, true, c, (dir / "ckpt4").string(), first[0].checkpoint, -1, keys);
    for (const auto *run : {&again, &as_whole}) {
        ASSERT_EQ((*run)[0].losses.size(), 3u);
        for (size_t i = 0; i < 3; ++i) EXPECT_NEAR((*run)[0].losses[i], whole[0].losses[3 + i], 1e-9) << "step " << 4 + i;
        EXPECT_LT(worst_difference(*(*run)[0].model, *whole[0].model), 1e-9);
    }

    // With ZeRO-1 on top: the same arithmetic bitwise, less state per rank, and a
    // checkpoint that resumes without sharding or splitting.
    cdrmix::TrainConfig sharded = c;
    sharded.shard_optimizer = true;
    const auto zero = train(2, 0, file, true, sharded, (dir / "ckpt5").string(), "", 3, split);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(zero[0].losses[i], two[0].losses[i]) << "step " << i + 1;
    EXPECT_EQ(worst_difference(*zero[1].model, *first[1].model), 0.0);
    EXPECT_LT(zero[0].state_bytes, first[0].state_bytes * 3 / 4);
    const auto unsplit = train(2, 0, file, true, c, (dir / "ckpt6").string(), zero[0].checkpoint, -1, keys);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(unsplit[0].losses[i], whole[0].losses[3 + i], 1e-9) << "step " << 4 + i;
}

TEST(ExpertParallel, BadPlacementsAreOneLine) {
    std::vector<std::string> errors(2);
    with_ranks(2, 0, [&](cdrmix::ProcessGroup &group) {
        errors[size_t(group.rank())] = cdrmix::test::error_of([&] {
            auto experts = expert_groups(group, {{"expert_parallel", 2}});
            model(20, true, {{"num_experts", 3}}, experts);
        });
    });
    for (const auto &e : errors) EXPECT_NE(e.find("3 routed experts cannot be split evenly over expert_parallel 2"), std::string::npos) << e;
    with_ranks(2, 0, [&](cdrmix::ProcessGroup &group) {
        errors[size_t(group.rank())] = cdrmix::test::error_of([&] { cdrmix::ExpertParallel(group, 3); });
    });
    for (const auto &e : errors) EXPECT_NE(e.find("does not divide the world size 2"), std::string::npos) << e;
}
