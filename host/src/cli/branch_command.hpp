// `cdrmix branch RUN_DIR --step N --router TYPE [--router-options JSON] [--layer L] [--runs-dir DIR]`:
// "what if I had switched routers at step N". Runs the run folder's copy of
// its script again (recorded overrides, thread count, device and working
// folder, as `cdrmix replay` does), resumed from the run's checkpoint at step
// N with the router of `layer` (every MoE layer by default) swapped right
// after resuming, into a new run folder beside the run (or under --runs-dir).
// Its config.json records {"of": checkpoint, "step": N, "swap": ...} as
// "branch", its metrics start with the swap record, and the dashboard and
// `cdrmix plot` overlay it on the run it branched from.
#pragma once

#include <CLI/CLI.hpp>

#include <cdrmix/config.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cdrmix {

struct BranchOptions {
    std::string run_dir;
    int64_t step = 0;
    std::string router;         // a router type
    std::string router_options; // more router keys as a JSON object
    std::string layer = "all";  // a layer id or "all"
    std::string runs_dir;       // default: the folder holding run_dir
};

CLI::App *add_branch_command(CLI::App &app, BranchOptions &options);

// The swap request the branch applies ({"layer", "router"}); throws cdrmix::Error for bad options.
Json branch_swap(const BranchOptions &options);

// The `cdrmix branch ...` arguments after the program (for the dashboard, which starts branches as processes).
std::vector<std::string> branch_args(const BranchOptions &options);

// The newest run folder under `runs` whose config.json says it branched from
// `checkpoint` (a canonical path), or an empty path while there is none.
std::filesystem::path find_branch_folder(const std::filesystem::path &runs, const std::string &checkpoint);

// Runs the branch to its end; prints the branch's run folder. Exit status 0
// when the branch ran, 1 when it could not start or failed (its output file is named).
int run_branch_command(const BranchOptions &options, const std::vector<std::string> &plugin_paths, int threads,
                       const std::string &device);

} // namespace cdrmix
