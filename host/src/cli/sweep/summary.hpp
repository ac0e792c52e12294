// The summary of a sweep: one row per grid point and run name (a script with
// several trainers makes several runs per point), its figures over the seeds
// (mean and sample standard deviation), as Markdown and CSV. The figures come
// from each run's metrics.jsonl records, read as the dashboard reads them
// (ui::RunData): the last and the lowest val_loss of the eval records, the end
// record's tokens_per_s, and the last routing statistics (load_cv averaged and
// dead_experts summed over MoE layers).
#pragma once

#include "cli/sweep/grid.hpp"

#include <data/run_data.hpp>

#include <string>
#include <vector>

namespace cdrmix::sweep {

// What one job left: how it ended and the runs it wrote.
struct JobResult {
    Job job;
    bool ran = false;      // started (an interrupted sweep leaves some unstarted)
    bool ok = false;       // exit status 0
    std::string status;    // "ok", "exit status 1", "not run (interrupted)", ...
    std::vector<ui::RunData> runs;
};

struct Stat {
    double mean = 0, spread = 0; // spread: sample standard deviation, 0 for one value
    int n = 0;                   // values behind it (0: none)
};

struct Row {
    size_t point = 0;
    std::vector<std::pair<std::string, std::string>> axes;
    std::string run;                 // run name ("" when no seed of this point wrote a run)
    int seeds = 0, seeds_ok = 0;     // jobs of this point, and those that exited 0
    Stat final_val, best_val, tokens_per_s, load_cv, dead_experts;
    std::string status;              // "ok", or which seeds failed and how
};

std::vector<Row> summarise(const std::vector<JobResult> &results);

std::string markdown_table(const Grid &grid, const std::vector<Row> &rows);
std::string csv_table(const Grid &grid, const std::vector<Row> &rows);

} // namespace cdrmix::sweep
