#include "cli/gui_branches.hpp"

#include "cli/branch_command.hpp"
#include "cli/child_process.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/registry.hpp>

#include <sys/wait.h>

namespace fs = std::filesystem;

namespace cdrmix {

BranchLauncher::BranchLauncher(std::vector<std::string> plugin_paths, int threads)
    : plugin_paths_(std::move(plugin_paths)), threads_(threads) {}

BranchLauncher::~BranchLauncher() {
    for (auto &c : children_)
        if (!c.ended) forget_child(c.pid); // never waited for: the branch goes on after the window closes
}

std::vector<std::string> registered_routers() {
    std::vector<std::string> names;
    for (const auto &f : Registry::global().list())
        if (f.kind == PluginKind::Router) names.push_back(f.name);
    return names;
}

void BranchLauncher::branch(const std::string &run_dir, int64_t step, const ui::SwapRequest &swap) {
    BranchOptions o;
    o.run_dir = run_dir;
    o.step = step;
    o.router = swap.router_type;
    o.router_options = swap.options;
    o.layer = swap.layer < 0 ? "all" : std::to_string(swap.layer);
    const fs::path dir = fs::absolute(run_dir).lexically_normal();
    Child c;
    c.runs = dir.parent_path();
    std::error_code ec;
    c.checkpoint = fs::weakly_canonical(dir / run_layout::checkpoints / run_layout::checkpoint_folder(step), ec).string();
    c.label = dir.filename().string() + " at step " + std::to_string(step) + " -> " + swap.router_type;
    c.log = c.runs / (dir.filename().string() + "-branch-step" + std::to_string(step) + "-" + swap.router_type + ".gui.log");
    std::vector<std::string> args = {this_program()};
    for (const auto &p : plugin_paths_) args.insert(args.end(), {"--plugin-path", fs::absolute(p).string()});
    if (threads_ > 0) args.insert(args.end(), {"--threads", std::to_string(threads_)});
    const auto rest = branch_args(o);
    args.insert(args.end(), rest.begin(), rest.end());
    try {
        ChildSpec spec;
        spec.args = std::move(args);
        spec.output = c.log.string();
        spec.own_process_group = true; // Ctrl-C in the terminal stops the window, not the branch's checkpointing
        c.pid = start_child(spec);
    } catch (const std::exception &e) {
        status_ = std::string("branch not started: ") + e.what();
        return;
    }
    status_ = "branch " + c.label + " starting (output: " + c.log.string() + ")";
    children_.push_back(std::move(c));
}

bool BranchLauncher::poll(const std::function<void(const std::string &)> &found) {
    bool changed = false;
    const auto now = std::chrono::steady_clock::now();
    const bool scan = now >= next_scan_;
    if (scan) next_scan_ = now + std::chrono::milliseconds(500);
    for (auto &c : children_) {
        if (!c.found && scan) {
            const fs::path folder = find_branch_folder(c.runs, c.checkpoint);
            if (!folder.empty()) {
                c.found = true;
                found(folder.string());
                status_ = "branch " + c.label + " running in " + folder.string();
                changed = true;
            }
        }
        if (!c.ended) {
            const int st = poll_child(c.pid);
            if (st >= 0) {
                c.ended = true;
                const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
                status_ = "branch " + c.label + (ok ? " finished" : " ended with " + status_text(st) + "; see " + c.log.string());
                changed = true;
            }
        }
    }
    return changed;
}

} // namespace cdrmix
