#include "cli/replay_command.hpp"

#include "cli/child_process.hpp"
#include "cli/recorded_run.hpp"
#include "run/environment.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/error.hpp>

#include <data/run_data.hpp>
#include <data/run_source.hpp>

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

namespace env = run_environment::keys;

// The run folder as replay needs it: a fresh run (not a continuation) with step records.
struct Recorded {
    RecordedRun run;
    std::string run_name;
    ui::RunData metrics;
};

Recorded read_recorded(const fs::path &dir) {
    Recorded r{read_recorded_run(dir, "replay"), "", {}};
    const Json &config = r.run.config;
    if (config.contains("resumed_from") && !config["resumed_from"].is_null())
        throw Error("replay: " + dir.string() + " resumed another run (" + config["resumed_from"].dump() +
                    "); replay the run it continued");
    int64_t bad = 0;
    r.metrics = ui::read_run(ui::run_source(dir.string()), &bad);
    if (r.metrics.loss.empty()) throw Error("replay: " + (dir / run_layout::metrics).string() + " holds no step records");
    r.run_name = r.metrics.run_name;
    return r;
}

// The replay's own run folder inside its runs folder: the one of the same run name.
fs::path replayed_folder(const fs::path &runs, const std::string &run_name) {
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(runs, ec))
        if (e.is_directory() && (run_name.empty() || run_folder::is_run_of(e.path().filename().string(), run_name)))
            return e.path();
    return {};
}

std::string exact(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// The first step (up to `steps`) where the curves differ, described; "" when they match.
std::string first_difference(const ui::RunData &run, const ui::RunData &replay, int64_t steps, size_t *compared) {
    const ui::Series &a = run.loss, &b = replay.loss;
    size_t n = a.size();
    if (steps > 0)
        n = static_cast<size_t>(std::lower_bound(a.step.begin(), a.step.end(), static_cast<double>(steps) + 0.5) - a.step.begin());
    *compared = n;
    for (size_t i = 0; i < n; ++i) {
        if (i >= b.size()) return "the replay ended after step " + (b.empty() ? std::string("0") : exact(b.step.back())) +
                                  "; the run went on to step " + exact(a.step[n - 1]);
        if (a.step[i] != b.step[i]) return "step numbers differ: " + exact(a.step[i]) + " recorded, " + exact(b.step[i]) + " replayed";
        if (!same_bits(a.value[i], b.value[i]))
            return "step " + exact(a.step[i]) + ": train loss " + exact(a.value[i]) + " recorded, " + exact(b.value[i]) +
                   " replayed";
    }
    // Evaluations both made (a replay stopped by --steps evaluates once more, at its last step).
    for (size_t i = 0, j = 0; i < run.val_loss.size() && j < replay.val_loss.size();) {
        const double sa = run.val_loss.step[i], sb = replay.val_loss.step[j];
        if (steps > 0 && sa > static_cast<double>(steps)) break;
        if (sa < sb) ++i;
        else if (sb < sa) ++j;
        else {
            if (!same_bits(run.val_loss.value[i], replay.val_loss.value[j]))
                return "step " + exact(sa) + ": val loss " + exact(run.val_loss.value[i]) + " recorded, " +
                       exact(replay.val_loss.value[j]) + " replayed";
            ++i, ++j;
        }
    }
    return "";
}

} // namespace

CLI::App *add_replay_command(CLI::App &app, ReplayOptions &o) {
    auto *cmd = app.add_subcommand("replay", "Re-run a finished run from its folder and compare the loss curve bit for bit");
    cmd->add_option("run", o.run_dir, "The run folder")->required();
    cmd->add_option("--steps", o.steps, "Replay and compare the first N steps only (the schedule is unchanged)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("-o,--output", o.out, "Where the replay's runs folder goes (default replays/<run folder>-<time>)");
    cmd->footer("The replay runs the run folder's copy of the script with the recorded overrides, thread count "
                "(unless --threads is given) and device, from the recorded working folder. Exit status 0: the "
                "loss curve matches bit for bit; 1: it does not (the first differing step and what differs "
                "in the recorded environment are printed) or the replay failed.");
    return cmd;
}

int run_replay_command(const ReplayOptions &o, const std::vector<std::string> &plugin_paths, int threads,
                       const std::string &device) {
    const fs::path dir = fs::absolute(o.run_dir).lexically_normal();
    const Recorded rec = read_recorded(dir);
    std::string out = o.out;
    if (out.empty()) out = "replays/" + run_folder::make(dir.filename().string(), std::time(nullptr), 1);
    const fs::path runs = fs::absolute(out).lexically_normal();
    std::error_code ec;
    if (fs::exists(runs, ec) && !fs::is_empty(runs, ec))
        throw Error("replay: -o " + out + " exists and is not empty; name a new folder");
    fs::create_directories(runs, ec);
    if (ec) throw Error("replay: " + runs.string() + ": cannot create: " + ec.message());

    const int use_threads = rerun_threads(rec.run, threads);
    const std::string use_device = rerun_device(rec.run, device);
    std::vector<std::string> args = rerun_args(rec.run, plugin_paths, threads, device, runs.string());
    if (o.steps > 0) args.insert(args.end(), {"--stop-after", std::to_string(o.steps)});
    const std::string log = (runs / "output.log").string();
    const std::string cwd = text_field(rec.run.environment, env::cwd, "");
    std::printf("replay: %s with %d thread(s) on %s%s -> %s\n", dir.string().c_str(), use_threads, use_device.c_str(),
                o.steps > 0 ? (", steps 1-" + std::to_string(o.steps)).c_str() : "", runs.string().c_str());
    std::fflush(stdout);

    forward_signals_to_children();
    ChildSpec spec;
    spec.args = std::move(args);
    spec.output = log;
    spec.cwd = cwd;
    spec.own_process_group = true;
    const int status = wait_for_child(start_child(spec));
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        std::fprintf(stderr, "cdrmix replay: the replay ended with %s; its output is in %s\n", status_text(status).c_str(), log.c_str());
        return 1;
    }
    const fs::path replayed = replayed_folder(runs, rec.run_name);
    if (replayed.empty()) throw Error("replay: the replay wrote no run folder in " + runs.string() + " (see " + log + ")");
    const Json config = read_run_json(replayed / run_layout::config, "replay");
    const std::vector<std::string> differs = run_environment::differences(
        rec.run.environment, rec.run.plugins, config.contains(env::environment) ? config[env::environment] : Json::object(),
        read_run_json(replayed / run_layout::plugins, "replay"));
    int64_t bad = 0;
    const ui::RunData again = ui::read_run(ui::run_source(replayed.string()), &bad);

    size_t compared = 0;
    const std::string difference = first_difference(rec.metrics, again, o.steps, &compared);
    if (difference.empty()) {
        std::printf("match: the train loss of all %zu steps (and every val loss both runs evaluated) is bit for bit "
                    "the run's\n", compared);
        for (const auto &d : differs) std::printf("note: the environment differs: %s\n", d.c_str());
        return 0;
    }
    std::printf("DIFFERS: %s\n", difference.c_str());
    if (differs.empty())
        std::printf("what differs: nothing the run folder records (cdrmix, LibTorch, threads, device, kernels, seed, "
                    "plugins); look at the data files and the script's own inputs\n");
    for (const auto &d : differs) std::printf("what differs: %s\n", d.c_str());
    std::printf("the replay is in %s\n", replayed.string().c_str());
    return 1;
}

} // namespace cdrmix
