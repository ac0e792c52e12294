// Requests from outside the training thread (Ctrl-C, the dashboard's buttons)
// to the trainer. The trainer polls these between steps, so a request never
// interrupts a step half-way and never makes the requester wait.
#pragma once

#include <atomic>

namespace cdrmix {

struct RunControl {
    std::atomic<bool> stop{false};            // finish the current step, checkpoint, return
    std::atomic<bool> pause{false};           // hold between steps until cleared (or stop)
    std::atomic<bool> checkpoint_now{false};  // write a checkpoint after the current step; cleared by the trainer
    std::atomic<bool> interrupted{false};     // stop came from Ctrl-C: the script ends after the checkpoint
};

} // namespace cdrmix
