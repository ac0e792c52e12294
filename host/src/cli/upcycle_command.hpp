// `cdrmix upcycle CHECKPOINT --experts E --top-k K [--moe-every N]
// [--shared-experts S] [--router TYPE] [--noise X] [--seed N] -o DIR`: a dense
// model's FFNs become MoE layers of copies of them (interop/upcycle.hpp).
#pragma once

#include "interop/upcycle.hpp"

#include <CLI/CLI.hpp>

namespace cdrmix {

class UpcycleCommand {
public:
    // Adds the subcommand to app.
    explicit UpcycleCommand(CLI::App &app);
    bool selected() const { return static_cast<bool>(*command_); }
    // Runs it (plugins must be loaded); returns the exit code.
    int run() const;

private:
    CLI::App *command_ = nullptr;
    std::string checkpoint_, out_, router_ = "topk";
    int64_t experts_ = 0, top_k_ = 0, moe_every_ = 1, shared_ = 0, seed_ = 0;
    double noise_ = 0.0;
};

} // namespace cdrmix
