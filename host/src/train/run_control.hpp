// Requests from outside the training thread (Ctrl-C, the dashboard's buttons)
// to the trainer. The trainer polls these between steps, so a request never
// interrupts a step half-way and never makes the requester wait.
#pragma once

#include <cdrmix/config.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace cdrmix {

struct RunControl {
    std::atomic<bool> stop{false};            // finish the current step, checkpoint, return
    std::atomic<bool> pause{false};           // hold between steps until cleared (or stop)
    std::atomic<bool> checkpoint_now{false};  // write a checkpoint after the current step; cleared by the trainer
    std::atomic<bool> interrupted{false};     // stop came from Ctrl-C: the script ends after the checkpoint

    // A router swap, {"layer": id or "all", "router": {...}} as trainer:swap_router
    // takes them. The trainer applies it before its next step (a paused trainer:
    // when it resumes, so a snapshot taken at the pause stays true) and leaves the outcome: the swap record's summary, or why it failed (the run goes
    // on with its router). A newer request replaces one not yet taken.
    void request_swap(Json request) {
        std::lock_guard<std::mutex> lock(swap_mutex_);
        swap_ = std::move(request);
        swap_outcome_ = "swap waiting for the next step boundary";
    }
    std::optional<Json> take_swap() {
        std::lock_guard<std::mutex> lock(swap_mutex_);
        return std::exchange(swap_, std::nullopt);
    }
    void set_swap_outcome(std::string outcome) {
        std::lock_guard<std::mutex> lock(swap_mutex_);
        swap_outcome_ = std::move(outcome);
    }
    std::string swap_outcome() const {
        std::lock_guard<std::mutex> lock(swap_mutex_);
        return swap_outcome_;
    }

private:
    mutable std::mutex swap_mutex_;
    std::optional<Json> swap_;
    std::string swap_outcome_;
};

} // namespace cdrmix
