#include "cli/launch_command.hpp"

#include "cli/child_process.hpp"

#include <cdrmix/error.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace cdrmix {

namespace {

constexpr int kMaxRanks = 1024;

std::pair<std::string, int> split_master(const std::string &master) {
    const auto colon = master.rfind(':');
    if (colon == std::string::npos || colon == 0)
        throw Error("launch: --master must be HOST:PORT, got '" + master + "'");
    char *end = nullptr;
    const long port = std::strtol(master.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        throw Error("launch: --master '" + master + "': the port must be a number in 1..65535");
    return {master.substr(0, colon), static_cast<int>(port)};
}

} // namespace

CLI::App *add_launch_command(CLI::App &app, LaunchOptions &o) {
    auto *launch = app.add_subcommand("launch", "Start N ranks of a run on this node (a multi-process group over c10d)");
    launch->add_option("-n,--nproc-per-node", o.nproc, "Ranks on this node")->check(CLI::Range(1, kMaxRanks));
    launch->add_option("--nnodes", o.nnodes, "Nodes in the job (default 1)")->check(CLI::Range(1, 1 << 16));
    launch->add_option("--node-rank", o.node_rank, "This node's index, 0..nnodes-1 (default 0)")->check(CLI::NonNegativeNumber);
    launch->add_option("--master", o.master, "Rank 0's node and a free port (default 127.0.0.1:29500)");
    launch->add_option("--timeout", o.timeout_s, "Seconds any rendezvous or collective may wait (default 300)")
        ->check(CLI::Range(1, 24 * 3600));
    launch->footer("Then the command every rank runs: run|gui script.lua [key=value ...] [options]");
    return launch;
}

namespace {

int run_launch(const LaunchOptions &o, const std::vector<std::string> &globals, const std::vector<std::string> &command) {
    if (o.node_rank >= o.nnodes)
        throw Error("launch: --node-rank " + std::to_string(o.node_rank) + " is not below --nnodes " +
                    std::to_string(o.nnodes));
    const auto [host, port] = split_master(o.master);
    std::vector<std::string> args = {this_program()};
    args.insert(args.end(), globals.begin(), globals.end());
    args.insert(args.end(), command.begin(), command.end());
    forward_signals_to_children();

    const int world = o.nproc * o.nnodes;
    std::vector<pid_t> pids; // index: local rank
    for (int local = 0; local < o.nproc; ++local) {
        const int rank = o.node_rank * o.nproc + local;
        try {
            ChildSpec spec;
            spec.args = args;
            spec.env = {{"RANK", std::to_string(rank)},
                        {"WORLD_SIZE", std::to_string(world)},
                        {"LOCAL_RANK", std::to_string(local)},
                        {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
                        {"MASTER_ADDR", host},
                        {"MASTER_PORT", std::to_string(port)},
                        {"CDRMIX_DIST_TIMEOUT", std::to_string(o.timeout_s)}};
            pids.push_back(start_child(spec));
        } catch (const std::exception &e) {
            signal_children(SIGTERM);
            throw Error(std::string("launch: ") + e.what());
        }
    }

    // Wait for every rank; on the first failure stop the rest, with a grace period.
    int code = 0, alive = static_cast<int>(pids.size());
    bool stopping = false;
    auto deadline = std::chrono::steady_clock::time_point::max();
    while (alive > 0) {
        int status = 0;
        const pid_t done = ::waitpid(-1, &status, WNOHANG);
        if (done < 0 && errno != EINTR) break;
        if (done <= 0) {
            if (stopping && std::chrono::steady_clock::now() > deadline) {
                signal_children(SIGKILL);
                deadline = std::chrono::steady_clock::time_point::max();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        --alive;
        forget_child(done);
        const int local = static_cast<int>(std::find(pids.begin(), pids.end(), done) - pids.begin());
        const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (failed && !stopping) {
            const int rank = o.node_rank * o.nproc + local;
            std::fprintf(stderr, "cdrmix launch: rank %d (pid %d) ended with %s; stopping the other %d rank(s)\n",
                         rank, static_cast<int>(done), status_text(status).c_str(), alive);
            code = exit_code_of(status);
            stopping = true;
            signal_children(SIGTERM);
            deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        }
    }
    return code;
}

} // namespace

bool try_launch(int argc, char **argv, int *code) {
    int at = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "run" || a == "gui") return false;
        if (a == "launch") {
            at = i;
            break;
        }
    }
    if (at == 0) return false;
    int command_at = at + 1;
    while (command_at < argc && std::string(argv[command_at]) != "run" && std::string(argv[command_at]) != "gui")
        ++command_at;
    CLI::App app{"cdrmix launch: start N ranks of a run on this node"};
    LaunchOptions options;
    add_launch_command(app, options);
    std::vector<std::string> args(argv + at, argv + command_at); // "launch" and its options
    std::reverse(args.begin(), args.end());                       // CLI11 takes them last first
    try {
        app.parse(args);
    } catch (const CLI::ParseError &e) {
        *code = app.exit(e);
        return true;
    }
    if (command_at == argc) {
        std::fprintf(stderr, "cdrmix: error: launch: give the command every rank runs, e.g. cdrmix launch -n 2 run x.lua\n");
        *code = 2;
        return true;
    }
    std::vector<std::string> globals(argv + 1, argv + at), command(argv + command_at, argv + argc);
    try {
        *code = run_launch(options, globals, command);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cdrmix: error: %s\n", e.what());
        *code = 1;
    }
    return true;
}

} // namespace cdrmix
