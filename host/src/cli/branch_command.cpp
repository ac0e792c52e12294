#include "cli/branch_command.hpp"

#include "cli/child_process.hpp"
#include "cli/recorded_run.hpp"
#include "run/environment.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/error.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

// The run's checkpoint steps, ascending (complete or not: resume checks the manifest).
std::vector<int64_t> checkpoint_steps(const fs::path &run_dir) {
    std::vector<int64_t> steps;
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(run_dir / run_layout::checkpoints, ec)) {
        if (const int64_t step = run_layout::checkpoint_step(e.path().filename().string()); step >= 0) steps.push_back(step);
    }
    std::sort(steps.begin(), steps.end());
    return steps;
}

std::string steps_text(const std::vector<int64_t> &steps) {
    std::string s;
    for (int64_t step : steps) s += (s.empty() ? "" : ", ") + std::to_string(step);
    return s.empty() ? "none" : s;
}

} // namespace

fs::path find_branch_folder(const fs::path &runs, const std::string &checkpoint) {
    fs::path found;
    fs::file_time_type newest{};
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(runs, ec)) {
        const fs::path config = e.path() / run_layout::config;
        if (!fs::is_regular_file(config, ec)) continue;
        Json c;
        try {
            c = read_run_json(config, "branch");
        } catch (const Error &) {
            continue; // another process's folder being written, or not a run
        }
        const Json branch = c.value("branch", Json());
        if (!branch.is_object() || branch.value("of", "") != checkpoint) continue;
        const auto t = fs::last_write_time(config, ec);
        if (found.empty() || t > newest) found = e.path(), newest = t;
    }
    return found;
}

CLI::App *add_branch_command(CLI::App &app, BranchOptions &o) {
    auto *cmd = app.add_subcommand("branch", "Continue a run from one of its checkpoints with another router, as a new run");
    cmd->add_option("run", o.run_dir, "The run folder")->required();
    cmd->add_option("--step", o.step, "The checkpoint step to branch from (one of the run's checkpoints)")
        ->required()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--router", o.router, "The router type from the branch point on (see `cdrmix plugins`)")->required();
    cmd->add_option("--router-options", o.router_options, "More router keys as a JSON object, e.g. '{\"top_k\": 1}'");
    cmd->add_option("--layer", o.layer, "The MoE layer whose router is swapped, or all (default)");
    cmd->add_option("--runs-dir", o.runs_dir, "Where the branch's run folder goes (default: beside the run)");
    cmd->footer("The branch runs the run folder's copy of the script with the recorded overrides, thread count and "
                "device, resumed from checkpoints/step-N with the router swapped right after resuming (a swap "
                "record at step N). Overlay it on the run: cdrmix gui --watch RUN BRANCH, cdrmix plot RUN BRANCH.");
    return cmd;
}

Json branch_swap(const BranchOptions &o) {
    Json router = Json::object();
    if (!o.router_options.empty()) {
        router = Json::parse(o.router_options, nullptr, false);
        if (router.is_discarded() || !router.is_object())
            throw Error("branch: --router-options is not a JSON object: " + o.router_options);
    }
    router["type"] = o.router;
    Json layer = o.layer;
    if (o.layer != "all") {
        char *end = nullptr;
        const long long id = std::strtoll(o.layer.c_str(), &end, 10);
        if (o.layer.empty() || *end != '\0' || id < 0)
            throw Error("branch: --layer is a layer id (0-based, as in the records) or all, not '" + o.layer + "'");
        layer = static_cast<int64_t>(id);
    }
    return {{"layer", layer}, {"router", router}};
}

std::vector<std::string> branch_args(const BranchOptions &o) {
    std::vector<std::string> args = {"branch", o.run_dir, "--step", std::to_string(o.step), "--router", o.router,
                                     "--layer", o.layer};
    if (!o.router_options.empty()) args.insert(args.end(), {"--router-options", o.router_options});
    if (!o.runs_dir.empty()) args.insert(args.end(), {"--runs-dir", o.runs_dir});
    return args;
}

int run_branch_command(const BranchOptions &o, const std::vector<std::string> &plugin_paths, int threads,
                       const std::string &device) {
    const fs::path dir = fs::absolute(o.run_dir).lexically_normal();
    const RecordedRun run = read_recorded_run(dir, "branch");
    const Json swap = branch_swap(o);
    const std::vector<int64_t> steps = checkpoint_steps(dir);
    if (std::find(steps.begin(), steps.end(), o.step) == steps.end())
        throw Error("branch: " + dir.string() + " has no checkpoint at step " + std::to_string(o.step) +
                    " (its checkpoints: " + steps_text(steps) + ")");
    const std::string checkpoint = (dir / run_layout::checkpoints / run_layout::checkpoint_folder(o.step)).string();
    const fs::path runs = o.runs_dir.empty() ? dir.parent_path() : fs::absolute(o.runs_dir).lexically_normal();
    std::error_code ec;
    fs::create_directories(runs, ec);
    if (ec) throw Error("branch: " + runs.string() + ": cannot create: " + ec.message());

    std::vector<std::string> args = rerun_args(run, plugin_paths, threads, device, runs.string());
    args.insert(args.end(), {"--resume", checkpoint, "--branch-swap", swap.dump()});
    const std::string log = (runs / (dir.filename().string() + "-branch-step" + std::to_string(o.step) + "-" +
                                     o.router + ".log")).string();
    std::printf("branch: %s from step %lld with layer %s's router %s -> %s (output: %s)\n", dir.string().c_str(),
                static_cast<long long>(o.step), o.layer.c_str(), swap["router"].dump().c_str(), runs.string().c_str(),
                log.c_str());
    std::fflush(stdout);

    forward_signals_to_children();
    ChildSpec spec;
    spec.args = std::move(args);
    spec.output = log;
    spec.cwd = text_field(run.environment, run_environment::keys::cwd, "");
    spec.own_process_group = true;
    const int status = wait_for_child(start_child(spec));
    const fs::path branch = find_branch_folder(runs, fs::weakly_canonical(checkpoint, ec).string());
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        std::fprintf(stderr, "cdrmix branch: the branch ended with %s; its output is in %s\n", status_text(status).c_str(),
                     log.c_str());
        return 1;
    }
    if (branch.empty()) throw Error("branch: the branch wrote no run folder in " + runs.string() + " (see " + log + ")");
    std::printf("branch: %s\n", branch.string().c_str());
    return 0;
}

} // namespace cdrmix
