// `cdrmix sweep`'s pieces without processes: the grid (axes, fixed overrides,
// seeds, bad arguments) and the summary table from runs' records.
#include "cli/sweep/grid.hpp"
#include "cli/sweep/summary.hpp"

#include <cdrmix/error.hpp>

#include <gtest/gtest.h>

#include <cmath>

using namespace cdrmix;
using namespace cdrmix::sweep;

TEST(SweepGrid, CartesianProductFirstAxisSlowestWithSeeds) {
    const Grid g = parse_grid({"model.num_experts=4,8", "train.steps=5", "model.router.type=topk,sinkhorn"}, 2, "train.seed");
    ASSERT_EQ(g.axes.size(), 2u);
    EXPECT_EQ(g.fixed, std::vector<std::string>{"train.steps=5"});
    EXPECT_EQ(g.points(), 4u);
    const std::vector<Job> jobs = expand(g);
    ASSERT_EQ(jobs.size(), 8u);
    EXPECT_EQ(jobs[0].overrides, (std::vector<std::string>{"train.steps=5", "model.num_experts=4", "model.router.type=topk",
                                                           "train.seed=1"}));
    EXPECT_EQ(jobs[1].overrides.back(), "train.seed=2");
    EXPECT_EQ(jobs[2].overrides[2], "model.router.type=sinkhorn");
    EXPECT_EQ(jobs[4].overrides[1], "model.num_experts=8");
    EXPECT_EQ(jobs[7].point, 3u);
    EXPECT_EQ(jobs[7].folder, "point-004-seed-2");
    EXPECT_EQ(jobs[7].axes, (std::vector<std::pair<std::string, std::string>>{{"model.num_experts", "8"},
                                                                              {"model.router.type", "sinkhorn"}}));
    EXPECT_EQ(expand(parse_grid({"a=1"}, 0, "train.seed")).at(0).folder, "point-001");
    // Several seed keys: each run sets all of them to its seed.
    EXPECT_EQ(expand(parse_grid({"a=1"}, 2, "train.seed,data.seed")).at(1).overrides,
              (std::vector<std::string>{"a=1", "train.seed=2", "data.seed=2"}));
}

TEST(SweepGrid, BadArgumentsNameTheArgument) {
    auto message = [](std::vector<std::string> args, int seeds) {
        try {
            parse_grid(args, seeds, "train.seed");
        } catch (const Error &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(message({"model.num_experts"}, 0).find("'model.num_experts': expected key=value"), std::string::npos);
    EXPECT_NE(message({"=4,8"}, 0).find("'=4,8': expected key=value"), std::string::npos);
    EXPECT_NE(message({"a=4,,8"}, 0).find("'a=4,,8': an empty value"), std::string::npos);
    EXPECT_NE(message({"a=1,2", "a=3"}, 0).find("'a' is given twice"), std::string::npos);
    EXPECT_NE(message({"train.seed=1,2"}, 3).find("--seeds sets train.seed"), std::string::npos);
    try {
        parse_grid({}, 2, "train.seed,");
        ADD_FAILURE() << "an empty seed key was accepted";
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("--seed-key 'train.seed,': an empty key"), std::string::npos);
    }
}

namespace {

ui::RunData run_with(const std::string &name, std::vector<double> val_losses, double tokens_per_s, double load_cv, int dead) {
    ui::RunData run;
    run.name = name;
    int step = 0;
    for (double v : val_losses) {
        ++step;
        ui::ingest(run, {{"event", "step"}, {"step", step}, {"loss", 3.0},
                         {"moe", {{{"layer", 1}, {"load_cv", load_cv * 2}, {"dead_experts", 3}},
                                  {{"layer", 3}, {"load_cv", load_cv * 2}, {"dead_experts", 3}}}}});
        ui::ingest(run, {{"event", "eval"}, {"step", step}, {"val_loss", v}});
    }
    // The last step's statistics are the ones reported.
    ui::ingest(run, {{"event", "step"}, {"step", step + 1}, {"loss", 3.0},
                     {"moe", {{{"layer", 1}, {"load_cv", load_cv - 0.1}, {"dead_experts", dead}},
                              {{"layer", 3}, {"load_cv", load_cv + 0.1}, {"dead_experts", 0}}}}});
    ui::ingest(run, {{"event", "end"}, {"step", step + 1}, {"tokens_per_s", tokens_per_s}});
    return run;
}

} // namespace

TEST(SweepSummary, RowsPerPointWithMeanAndSpreadOverSeedsAndFailuresNamed) {
    const Grid g = parse_grid({"model.num_experts=4,8"}, 2, "train.seed");
    const std::vector<Job> jobs = expand(g);
    std::vector<JobResult> results(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) results[i].job = jobs[i], results[i].ran = true;
    results[0].ok = results[1].ok = results[2].ok = true;
    results[0].runs = {run_with("tiny", {3.0, 2.0, 2.5}, 1000, 0.5, 1)};
    results[1].runs = {run_with("tiny", {2.8, 2.1}, 3000, 0.7, 2)};
    results[2].runs = {run_with("tiny", {1.5}, 500, 0.2, 0)};
    results[3].status = "exit status 1 (see point-002-seed-2/output.log)";

    const std::vector<Row> rows = summarise(results);
    ASSERT_EQ(rows.size(), 2u);
    const Row &a = rows[0], &b = rows[1];
    EXPECT_EQ(a.run, "tiny");
    EXPECT_EQ(a.seeds, 2);
    EXPECT_EQ(a.seeds_ok, 2);
    EXPECT_DOUBLE_EQ(a.final_val.mean, (2.5 + 2.1) / 2);
    EXPECT_NEAR(a.final_val.spread, std::sqrt(2 * 0.2 * 0.2), 1e-12); // sample std of 2.5 and 2.1
    EXPECT_DOUBLE_EQ(a.best_val.mean, (2.0 + 2.1) / 2);
    EXPECT_DOUBLE_EQ(a.tokens_per_s.mean, 2000);
    EXPECT_DOUBLE_EQ(a.load_cv.mean, 0.6);    // per run: mean over layers of the last step
    EXPECT_DOUBLE_EQ(a.dead_experts.mean, 1.5); // per run: sum over layers of the last step
    EXPECT_EQ(a.status, "ok");
    EXPECT_EQ(b.seeds_ok, 1);
    EXPECT_EQ(b.final_val.n, 1);
    EXPECT_EQ(b.final_val.spread, 0);
    EXPECT_EQ(b.status, "failed: seed 2: exit status 1 (see point-002-seed-2/output.log)");

    const std::string md = markdown_table(g, rows);
    EXPECT_NE(md.find("| model.num_experts | run | seeds ok | final val loss | best val loss | tokens/s | load CV | dead experts | status |"),
              std::string::npos);
    EXPECT_NE(md.find("| 4 | tiny | 2/2 | 2.3000 ± 0.2828 | 2.0500 ± 0.0707 | 2000 ± 1414 | 0.600 ± 0.141 | 1.5 ± 0.71 | ok |"),
              std::string::npos)
        << md;
    const std::string csv = csv_table(g, rows);
    EXPECT_NE(csv.find("8,tiny,2,1,1.5,0,1.5,0,500,0,0.2,0,0,0,failed: seed 2: exit status 1 (see point-002-seed-2/output.log)\n"),
              std::string::npos)
        << csv;
}

TEST(SweepSummary, APointWhoseRunsAllFailedEarlyStillHasItsRow) {
    const Grid g = parse_grid({"model.router.type=topk,nosuch"}, 0, "train.seed");
    const std::vector<Job> jobs = expand(g);
    std::vector<JobResult> results = {{jobs[0], true, true, "ok", {run_with("tiny", {2.0}, 100, 0.3, 0)}},
                                      {jobs[1], true, false, "exit status 1", {}}};
    const std::vector<Row> rows = summarise(results);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[1].run, "");
    EXPECT_EQ(rows[1].final_val.n, 0);
    EXPECT_NE(markdown_table(g, rows).find("| nosuch | - | 0/1 | - | - | - | - | - | failed: exit status 1 |"), std::string::npos);
}
