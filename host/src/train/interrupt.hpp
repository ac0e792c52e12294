// Ctrl-C for `cdrmix run`: the first SIGINT asks the trainer to stop after the
// current step (it then checkpoints and the script ends with exit code 130);
// a second SIGINT exits at once with 130, without a checkpoint.
#pragma once

#include "train/run_control.hpp"

namespace cdrmix {

// Installs the handler for its lifetime and restores the previous one after.
class InterruptHandler {
public:
    explicit InterruptHandler(RunControl &control);
    ~InterruptHandler();
    InterruptHandler(const InterruptHandler &) = delete;
    InterruptHandler &operator=(const InterruptHandler &) = delete;
};

// The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
constexpr int kInterruptedExitCode = 130;

} // namespace cdrmix
