// Data parallelism in the stock trainer, with real process groups over
// loopback: each rank is a thread of this process with its own group. Two
// ranks with batch B match one rank with batch 2B (float64), with gradient
// accumulation too, with MoE experts that some rank leaves unused, and a
// two-rank checkpoint resumes at the same and at another world size.
#include "core/files.hpp"
#include "dist/gradient_sync.hpp"
#include "dist/thread_ranks.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

#include <filesystem>
#include <fstream>

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
std::shared_ptr<cdrmix::Model> model(int64_t vocab, bool moe) {
    Json spec = cdrmix::test::tiny_model_spec(vocab);
    if (moe) {
        spec["moe_every"] = 2;
        spec["num_experts"] = 16;
        spec["top_k"] = 1;
        spec["load_balance_alpha"] = 0.0;
        spec["expert"] = {{"type", "rwkv_channel_mix"}, {"expansion", 2}};
    }
    torch::manual_seed(21);
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    m->to(torch::kFloat64);
    return m;
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
                           int64_t stop_after = -1) {
    std::vector<Outcome> out(static_cast<size_t>(world));
    std::vector<std::shared_ptr<cdrmix::DataSource>> data;
    for (int r = 0; r < world; ++r) {
        data.push_back(source(file, r, world));
        // Rank 1 starts from other weights: the trainer broadcasts rank 0's (or resume loads them).
        out[size_t(r)].model = model(data.back()->tokenizer()->vocab_size(), moe);
        if (r > 0) {
            torch::NoGradGuard no_grad;
            for (auto &p : out[size_t(r)].model->parameters()) p.add_(0.01);
        }
    }
    cdrmix::MetricsBus bus;
    auto body = [&](cdrmix::ProcessGroup &group) {
        Outcome &o = out[size_t(group.rank())];
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
