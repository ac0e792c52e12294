// `cdrmix launch -n N [--nnodes M --node-rank R] [--master HOST:PORT] [--timeout S] run|gui script.lua ...`:
// starts N ranks of this program on this node (like `torchrun --standalone`),
// each with the torchrun variables set (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and CDRMIX_DIST_TIMEOUT. Ctrl-C
// and SIGTERM are forwarded to every rank; when one rank fails, the others are
// stopped (SIGTERM, then SIGKILL after a grace period) and one line names the
// rank and its exit status. The exit code is the first failing rank's.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace cdrmix {

struct LaunchOptions {
    int nproc = 1;
    int nnodes = 1;
    int node_rank = 0;
    std::string master = "127.0.0.1:29500";
    int timeout_s = 300;
};

// The `launch` subcommand and its options, in `app` (for `cdrmix --help`).
CLI::App *add_launch_command(CLI::App &app, LaunchOptions &options);
// When argv is a launch (`cdrmix [globals] launch [options] run|gui ...`),
// runs it and returns its exit code in *code. The ranks' command is handed on
// unparsed, so it is split off here rather than by CLI11.
bool try_launch(int argc, char **argv, int *code);

} // namespace cdrmix
