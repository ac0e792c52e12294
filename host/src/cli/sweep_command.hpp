// `cdrmix sweep script.lua model.num_experts=4,8 model.router.type=topk,sinkhorn [key=value ...]
//  [--seeds N [--seed-key train.seed,data.seed]] [--parallel P] [-o DIR]`: runs the grid (cli/sweep/grid.hpp), each run
// as a `cdrmix run` child process with its own runs folder and output log, P at a
// time with the threads split between them, then writes summary.md and summary.csv
// (cli/sweep/summary.hpp) into DIR. A failed run is named in the table and makes
// the exit status 1; the others still run. Ctrl-C reaches the running children
// (each checkpoints and stops) and starts no more.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace cdrmix {

struct SweepOptions {
    std::string script;
    std::vector<std::string> args; // key=value and key=v1,v2,...
    int seeds = 0;
    std::string seed_keys = "train.seed"; // comma list
    int parallel = 1;
    std::string out; // default: sweeps/<script name>-<stamp>
};

CLI::App *add_sweep_command(CLI::App &app, SweepOptions &options);

// plugin_paths, threads (0: every core) and device are the global options, handed to every child.
int run_sweep_command(const SweepOptions &options, const std::vector<std::string> &plugin_paths, int threads,
                      const std::string &device);

} // namespace cdrmix
