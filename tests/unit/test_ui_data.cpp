// The dashboard's data side: records into series, expert utilisation, and
// following a metrics.jsonl that another process is still writing.
#include <data/jsonl_follower.hpp>
#include <data/run_data.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace cdrmix::ui;

namespace {
Json step_record(int step, double loss, std::vector<int> tokens) {
    return {{"event", "step"}, {"step", step}, {"time", 1000.0 + step}, {"loss", loss}, {"lr", 1e-3},
            {"total_steps", 100},
            {"moe", {{{"layer", 1}, {"tokens_per_expert", tokens}, {"token_entropy", 0.5}, {"load_entropy", 0.9},
                      {"dropped_tokens", 0}, {"dead_experts", 0}, {"losses", {{"load_balance", 0.01}}}}}}};
}
} // namespace

TEST(UiRunData, StepEvalAndMoeRecordsBecomeSeries) {
    RunData run;
    ingest(run, step_record(1, 4.0, {10, 10, 10, 10}));
    ingest(run, step_record(2, 3.5, {20, 0, 10, 10}));
    ingest(run, {{"event", "eval"}, {"step", 2}, {"time", 1003.0}, {"val_loss", 3.7}});
    ingest(run, {{"event", "something_new"}});
    ASSERT_EQ(run.loss.size(), 2u);
    EXPECT_EQ(run.loss.time, (std::vector<double>{0, 1}));
    EXPECT_EQ(run.val_loss.value, std::vector<double>{3.7});
    ASSERT_EQ(run.layers.size(), 1u);
    EXPECT_EQ(run.layers[0].layer, 1);
    EXPECT_EQ(run.layers[0].losses.at("load_balance").size(), 2u);
    EXPECT_EQ(run.records, 4);
    // Last step only: 40 tokens over 4 experts, fair share 10.
    EXPECT_EQ(recent_utilisation(run.layers[0], 1), (std::vector<double>{2.0, 0.0, 1.0, 1.0}));
    EXPECT_EQ(recent_utilisation(run.layers[0], 2), (std::vector<double>{1.5, 0.5, 1.0, 1.0}));
}

// Router swaps (Trainer::swap_router) become marks at their step and time on every plot.
// The Branch tab lists a run's checkpoint steps; a swap asked for as a branch
// waits for a checkpoint written after it asked, and branches from the newest.
TEST(UiRunData, CheckpointStepsAndTheFirstCheckpointAfterARequest) {
    RunData run;
    auto checkpoint = [&](const std::string &path) { ingest(run, {{"event", "checkpoint"}, {"path", path}, {"step", 0}}); };
    checkpoint("runs/a/checkpoints/step-000010");
    checkpoint("runs/a/checkpoints/latest");
    checkpoint("runs/a/checkpoints/step-000020");
    checkpoint("runs/a/checkpoints/step-000010"); // written again after a resume
    EXPECT_EQ(checkpoint_steps(run), (std::vector<int64_t>{10, 20}));
    const size_t asked_at = run.checkpoints.size();
    EXPECT_EQ(checkpoint_step_after(run, asked_at), -1) << "nothing written since";
    checkpoint("runs/a/checkpoints/latest");
    EXPECT_EQ(checkpoint_step_after(run, asked_at), -1) << "'latest' is no step to branch from";
    checkpoint("runs/a/checkpoints/step-000037");
    EXPECT_EQ(checkpoint_step_after(run, asked_at), 37);
    EXPECT_EQ(checkpoint_step_after(run, 0), 37);
    checkpoint("runs/a/checkpoints/step-37"); // not the layout's folder name
    EXPECT_EQ(checkpoint_step_after(run, asked_at), 37);
}

TEST(UiRunData, SwapRecordsBecomeMarks) {
    RunData run;
    ingest(run, step_record(1, 4.0, {10, 10, 10, 10}));
    ingest(run, {{"event", "swap"}, {"step", 1}, {"time", 1004.5}, {"layers", {1}}, {"router", {{"type", "sinkhorn"}}}});
    ingest(run, step_record(2, 3.5, {20, 0, 10, 10}));
    ASSERT_EQ(run.swaps.size(), 1u);
    EXPECT_EQ(run.swaps.step, std::vector<double>{1});
    EXPECT_EQ(run.swaps.time, std::vector<double>{3.5});
    EXPECT_EQ(run.version, 3);
}

TEST(UiRunData, MemoryRecordsBecomeSeriesOnlyWhenPresent) {
    RunData cpu, gpu;
    Json rec = step_record(1, 4.0, {1, 1});
    rec["rss_mb"] = 512.0;
    ingest(cpu, rec);
    rec["device_mem_mb"] = 2048.0;
    ingest(gpu, rec);
    EXPECT_EQ(cpu.rss_mb.value, std::vector<double>{512.0});
    EXPECT_TRUE(cpu.device_mem_mb.empty()) << "a CPU run has no GPU memory panel";
    EXPECT_EQ(gpu.device_mem_mb.value, std::vector<double>{2048.0});
}

// A multi-process run's records: the communication wait and each rank's tokens/s.
TEST(UiRunData, RankFiguresBecomeOneSeriesPerRank) {
    RunData run;
    for (int step = 1; step <= 3; ++step) {
        Json rec = step_record(step, 3.0, {1, 1, 1, 1});
        rec["world_size"] = 2;
        rec["comm_s"] = 0.01 * step;
        rec["ranks"] = {{{"tokens_per_s", 100.0 * step}, {"comm_s", 0.0}}, {{"tokens_per_s", 90.0 * step}}};
        ingest(run, rec);
    }
    ingest(run, {{"event", "step"}, {"step", 4}, {"ranks", "not a list"}});
    EXPECT_EQ(run.comm_s.value, (std::vector<double>{0.01, 0.02, 0.03}));
    ASSERT_EQ(run.rank_tokens_per_s.size(), 2u);
    EXPECT_EQ(run.rank_tokens_per_s[1].value, (std::vector<double>{90, 180, 270}));
}

TEST(UiRunData, AStepPublishedAgainReplacesTheTailSoAxesStayAscending) {
    RunData run;
    for (int s = 1; s <= 5; ++s) ingest(run, step_record(s, 5.0 - s * 0.1, {1, 1, 1, 1}));
    ingest(run, step_record(3, 9.0, {1, 1, 1, 1})); // a resumed run starting again from step 3
    EXPECT_EQ(run.loss.step, (std::vector<double>{1, 2, 3}));
    EXPECT_EQ(run.loss.last(), 9.0);
    EXPECT_EQ(run.layers[0].load_step.size(), 3u);
    EXPECT_EQ(run.layers[0].tokens_per_expert.size(), 12u);
}

TEST(UiJsonlFollower, PicksUpAppendedLinesAndWaitsForUnfinishedOnes) {
    const auto path = std::filesystem::temp_directory_path() / ("cdrmix_follow_" + std::to_string(::getpid()) + ".jsonl");
    std::filesystem::remove(path);
    JsonlFollower f(path.string());
    EXPECT_TRUE(f.poll().empty()); // not created yet
    {
        std::ofstream out(path);
        out << step_record(1, 4.0, {1, 1}).dump() << "\n" << step_record(2, 3.9, {1, 1}).dump() << "\n";
    }
    EXPECT_EQ(f.poll().size(), 2u);
    EXPECT_TRUE(f.poll().empty());
    const std::string third = step_record(3, 3.8, {1, 1}).dump();
    {
        std::ofstream out(path, std::ios::app);
        out << third.substr(0, 20); // the writer is mid-line
    }
    EXPECT_TRUE(f.poll().empty());
    {
        std::ofstream out(path, std::ios::app);
        out << third.substr(20) << "\nnot json\n";
    }
    const auto got = f.poll();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]["step"], 3);
    EXPECT_EQ(f.bad_lines(), 1);
    EXPECT_TRUE(f.caught_up());
    std::filesystem::remove(path);
}

TEST(UiJsonlFollower, ReadsALargeFileInBoundedChunks) {
    const auto path = std::filesystem::temp_directory_path() / ("cdrmix_chunks_" + std::to_string(::getpid()) + ".jsonl");
    {
        std::ofstream out(path);
        for (int s = 1; s <= 1000; ++s) out << step_record(s, 1.0, {1, 1}).dump() << "\n";
    }
    JsonlFollower f(path.string());
    size_t total = 0, polls = 0;
    do {
        total += f.poll(16 * 1024).size();
        ++polls;
    } while (!f.caught_up());
    EXPECT_EQ(total, 1000u);
    EXPECT_GT(polls, 5u);
    std::filesystem::remove(path);
}
