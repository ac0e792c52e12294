// The dashboard's Branch tab: each branch is a `cdrmix branch` child process
// (its output in a log file beside the run); poll() reaps the children and
// hands over each branch's run folder once it appears, so the window follows
// it as an overlaid run while it trains.
#pragma once

#include <app.hpp>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace cdrmix {

// The registered routers' names: what the Swap and Branch tabs offer.
std::vector<std::string> registered_routers();

class BranchLauncher final : public ui::Branching {
public:
    // plugin_paths and threads are passed on to each `cdrmix branch` (threads 0: the run's recorded count).
    BranchLauncher(std::vector<std::string> plugin_paths, int threads);
    ~BranchLauncher() override; // lets running branches finish: they are runs of their own

    // ---- ui::Branching (main thread) ----
    std::vector<std::string> router_types() const override { return registered_routers(); }
    void branch(const std::string &run_dir, int64_t step, const ui::SwapRequest &swap) override;
    std::string status() const override { return status_; }

    // Main thread, each frame's poll: calls found(folder) once per branch whose run
    // folder has appeared; returns whether anything changed.
    bool poll(const std::function<void(const std::string &folder)> &found);

private:
    struct Child {
        pid_t pid = -1;
        std::string checkpoint; // canonical: the branch's config.json names it
        std::filesystem::path runs, log;
        std::string label;      // "run@step -> router"
        bool found = false, ended = false;
    };
    std::vector<std::string> plugin_paths_;
    int threads_;
    std::vector<Child> children_;
    std::string status_;
    std::chrono::steady_clock::time_point next_scan_{}; // run folders are scanned twice a second at most
};

} // namespace cdrmix
