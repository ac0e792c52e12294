#include "cli/replay_command.hpp"

#include "cli/child_process.hpp"
#include "run/environment.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/error.hpp>

#include <data/run_data.hpp>
#include <data/run_source.hpp>

#include <sys/wait.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

namespace env = run_environment::keys;

// A run folder's JSON files are read whole, so they are bounded.
Json read_json(const fs::path &path) {
    constexpr uintmax_t kMaxBytes = 64u << 20;
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) throw Error("replay: " + path.string() + ": cannot read: " + ec.message());
    if (size > kMaxBytes) throw Error("replay: " + path.string() + ": " + std::to_string(size) + " bytes, more than a run's config may hold");
    std::ifstream in(path, std::ios::binary);
    std::string text(static_cast<size_t>(size), '\0');
    if (!in.read(text.data(), static_cast<std::streamsize>(size))) throw Error("replay: " + path.string() + ": cannot read");
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded()) throw Error("replay: " + path.string() + ": not JSON");
    return j;
}

// A string field of an untrusted object, or `fallback` when absent or not a string.
std::string text_field(const Json &j, const char *key, const std::string &fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// What the run folder says about how it was made.
struct Recorded {
    std::string script_copy; // inside the run folder
    std::vector<std::string> overrides;
    Json environment, plugins;
    std::string run_name;
    ui::RunData metrics;
};

Recorded read_recorded(const fs::path &dir) {
    if (!fs::is_directory(dir)) throw Error("replay: " + dir.string() + ": no such run folder");
    const Json config = read_json(dir / run_layout::config);
    Recorded r;
    if (!config.contains(env::environment) || !config[env::environment].is_object())
        throw Error("replay: " + (dir / run_layout::config).string() +
                    " has no 'environment': the run was made before runs recorded what replay needs");
    r.environment = config[env::environment];
    if (config.contains("resumed_from") && !config["resumed_from"].is_null())
        throw Error("replay: " + dir.string() + " resumed another run (" + config["resumed_from"].dump() +
                    "); replay the run it continued");
    const auto ws_it = r.environment.find(env::world_size);
    const Json ws = ws_it == r.environment.end() ? Json(1) : *ws_it;
    if (ws != Json(1)) throw Error("replay: " + dir.string() + " ran on " + ws.dump() + " processes; replay re-runs single-process runs");
    if (!config.contains("script") || !config["script"].is_string() || config["script"].get<std::string>().empty())
        throw Error("replay: " + (dir / run_layout::config).string() + " names no script");
    r.script_copy = (dir / fs::path(config["script"].get<std::string>()).filename()).string();
    if (!fs::is_regular_file(r.script_copy))
        throw Error("replay: " + r.script_copy + ": the run folder's copy of the script is missing");
    if (config.contains("overrides") && config["overrides"].is_array())
        for (const auto &o : config["overrides"])
            if (o.is_string()) r.overrides.push_back(o.get<std::string>());
    r.plugins = read_json(dir / run_layout::plugins);
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

    const auto threads_it = rec.environment.find(env::threads);
    const Json recorded_threads = threads_it == rec.environment.end() ? Json(nullptr) : *threads_it;
    const int use_threads = threads > 0 ? threads : recorded_threads.is_number_integer() ? recorded_threads.get<int>() : 0;
    const std::string use_device = device != "cpu" ? device : text_field(rec.environment, env::device, "cpu");
    std::vector<std::string> args = {this_program()};
    for (const auto &p : plugin_paths) args.insert(args.end(), {"--plugin-path", fs::absolute(p).string()});
    if (use_threads > 0) args.insert(args.end(), {"--threads", std::to_string(use_threads)});
    args.insert(args.end(), {"--device", use_device, "run", fs::absolute(rec.script_copy).string()});
    args.insert(args.end(), rec.overrides.begin(), rec.overrides.end());
    args.insert(args.end(), {"--headless", "--runs-dir", runs.string()});
    if (o.steps > 0) args.insert(args.end(), {"--stop-after", std::to_string(o.steps)});
    const std::string log = (runs / "output.log").string();
    const std::string cwd = text_field(rec.environment, env::cwd, "");
    std::printf("replay: %s with %d thread(s) on %s%s -> %s\n", dir.string().c_str(), use_threads, use_device.c_str(),
                o.steps > 0 ? (", steps 1-" + std::to_string(o.steps)).c_str() : "", runs.string().c_str());
    std::fflush(stdout);

    forward_signals_to_children();
    ChildSpec spec;
    spec.args = std::move(args);
    spec.output = log;
    spec.cwd = cwd;
    spec.own_process_group = true;
    const pid_t pid = start_child(spec);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) throw Error(std::string("replay: waiting for the run: ") + std::strerror(errno));
    forget_child(pid);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        std::fprintf(stderr, "cdrmix replay: the replay ended with %s; its output is in %s\n", status_text(status).c_str(), log.c_str());
        return 1;
    }
    const fs::path replayed = replayed_folder(runs, rec.run_name);
    if (replayed.empty()) throw Error("replay: the replay wrote no run folder in " + runs.string() + " (see " + log + ")");
    const Json config = read_json(replayed / run_layout::config);
    const std::vector<std::string> differs = run_environment::differences(
        rec.environment, rec.plugins, config.contains(env::environment) ? config[env::environment] : Json::object(), read_json(replayed / run_layout::plugins));
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
