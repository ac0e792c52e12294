// `cdrmix replay RUN_DIR [--steps N] [-o DIR]`: re-runs a finished run from what
// its folder holds (the script's copy, config.json's overrides and environment,
// plugins.json) as a `cdrmix run` child process with the recorded thread count
// and device, from the recorded working folder, then compares the two
// metrics.jsonl: the train loss of every step (and the val loss of every eval
// both have) bit for bit. Prints the match, or the first step that differs
// with both values and what differs in the environment (run/environment.hpp:
// a plugin file's hash, the thread count, the LibTorch version, ...).
// Exit status 0 when the curve matches, 1 when it does not or the replay failed.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix {

struct ReplayOptions {
    std::string run_dir;
    int64_t steps = 0; // 0: the whole run
    std::string out;   // default: replays/<run folder name>-<time>
};

CLI::App *add_replay_command(CLI::App &app, ReplayOptions &options);

// threads 0: the recorded count; another number is used and named as a difference.
int run_replay_command(const ReplayOptions &options, const std::vector<std::string> &plugin_paths, int threads,
                       const std::string &device);

} // namespace cdrmix
