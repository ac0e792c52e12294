#include "cli/sweep_command.hpp"

#include "cli/child_process.hpp"
#include "cli/commands.hpp"
#include "cli/sweep/grid.hpp"
#include "cli/sweep/summary.hpp"
#include "run/run_folder.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <data/run_source.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

using Clock = std::chrono::steady_clock;

// The sweep's folder: DIR as given (new or empty), else sweeps/<script name>-<stamp>.
std::string make_sweep_folder(const SweepOptions &o) {
    std::error_code ec;
    if (!o.out.empty()) {
        if (fs::exists(o.out, ec) && !(fs::is_directory(o.out, ec) && fs::is_empty(o.out, ec)))
            throw Error("sweep: -o " + o.out + " exists and is not an empty folder; name a new one");
        fs::create_directories(o.out, ec);
        if (ec) throw Error("sweep: -o " + o.out + ": cannot create: " + ec.message());
        return o.out;
    }
    fs::create_directories("sweeps", ec);
    if (ec) throw Error("sweep: sweeps: cannot create: " + ec.message());
    const std::string name = fs::path(o.script).stem().string();
    for (int attempt = 1;; ++attempt) {
        const std::string dir = "sweeps/" + run_folder::make(name, std::time(nullptr), attempt);
        if (fs::create_directory(dir, ec)) return dir;
        if (ec) throw Error("sweep: " + dir + ": cannot create: " + ec.message());
    }
}

std::string joined(const std::vector<std::string> &v, const char *sep) {
    std::string s;
    for (const auto &x : v) s += (s.empty() ? "" : sep) + x;
    return s;
}

// The runs a job wrote: every run folder (with a metrics.jsonl) in its runs folder.
std::vector<ui::RunData> runs_of(const std::string &runs_dir) {
    std::vector<std::string> dirs;
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(runs_dir, ec))
        if (e.is_directory() && fs::is_regular_file(e.path() / run_layout::metrics)) dirs.push_back(e.path().string());
    std::sort(dirs.begin(), dirs.end());
    std::vector<ui::RunData> runs;
    for (const auto &d : dirs) {
        int64_t bad = 0;
        ui::RunData run = ui::read_run(ui::run_source(d), &bad);
        if (bad > 0) std::fprintf(stderr, "cdrmix sweep: warning: %s: %lld lines were not JSON\n", d.c_str(), static_cast<long long>(bad));
        if (!run.run_name.empty()) run.name = run.run_name; // rows group by run name, not by folder
        runs.push_back(std::move(run));
    }
    return runs;
}

} // namespace

CLI::App *add_sweep_command(CLI::App &app, SweepOptions &o) {
    auto *cmd = app.add_subcommand("sweep", "Run a script over a grid of overrides and summarise the runs");
    cmd->add_option("script", o.script, "The .lua script")->required();
    cmd->add_option("overrides", o.args, "key=v1,v2,... (an axis of the grid) or key=value (every run)");
    cmd->add_option("--seeds", o.seeds,
                    "Run every grid point with seeds 1..N (each run's `--seed`, its initial weights, and the --seed-key "
                    "overrides)")
        ->check(CLI::Range(1, 1000));
    cmd->add_option("--seed-key", o.seed_keys,
                    "The overrides --seeds sets, a comma list (default train.seed; train.seed,data.seed also "
                    "varies the data order)");
    cmd->add_option("-p,--parallel", o.parallel, "Runs at a time; the threads are split between them (default 1)")
        ->check(CLI::Range(1, 256));
    cmd->add_option("-o,--output", o.out, "The sweep's folder, new or empty (default sweeps/<script>-<time>)");
    cmd->footer("Each run is `cdrmix run script.lua <overrides> --headless` with its own runs folder "
                "DIR/point-NNN[-seed-S]/ and its output in DIR/point-NNN[-seed-S]/output.log. "
                "DIR/summary.md and DIR/summary.csv hold, per grid point and run name: final and best val loss "
                "(mean and standard deviation over seeds), tokens/s, load CV and dead experts.");
    return cmd;
}

int run_sweep_command(const SweepOptions &o, const std::vector<std::string> &plugin_paths, int threads,
                      const std::string &device) {
    if (const std::string problem = script_file_problem(o.script); !problem.empty()) throw Error("sweep: " + problem);
    const sweep::Grid grid = sweep::parse_grid(o.args, o.seeds, o.seed_keys);
    const std::vector<sweep::Job> jobs = sweep::expand(grid);
    const int total_threads = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int parallel = std::min<int>(o.parallel, static_cast<int>(jobs.size()));
    const int child_threads = std::max(1, total_threads / parallel);
    const std::string dir = make_sweep_folder(o);
    std::printf("sweep: %zu run(s) (%zu grid point(s) x %d seed(s)), %d at a time with %d thread(s) each, in %s\n",
                jobs.size(), grid.points(), std::max(1, grid.seeds), parallel, child_threads, dir.c_str());
    std::fflush(stdout);

    std::vector<std::string> base = {this_program()};
    for (const auto &p : plugin_paths) base.insert(base.end(), {"--plugin-path", p});
    base.insert(base.end(), {"--device", device, "--threads", std::to_string(child_threads), "run", o.script});

    forward_signals_to_children();
    std::vector<sweep::JobResult> results(jobs.size());
    std::map<pid_t, std::pair<size_t, Clock::time_point>> running;
    size_t next = 0, finished = 0;
    const auto start = Clock::now();
    while (true) {
        while (!interrupted() && next < jobs.size() && running.size() < static_cast<size_t>(parallel)) {
            const sweep::Job &job = jobs[next];
            const std::string job_dir = dir + "/" + job.folder;
            fs::create_directories(job_dir);
            std::vector<std::string> args = base;
            args.insert(args.end(), job.overrides.begin(), job.overrides.end());
            args.insert(args.end(), {"--headless", "--runs-dir", job_dir});
            // A seed also starts LibTorch's generator, so the seeds' models start from different weights.
            if (job.seed > 0) args.insert(args.end(), {"--seed", std::to_string(job.seed)});
            results[next].job = job;
            results[next].ran = true;
            ChildSpec spec;
            spec.args = std::move(args);
            spec.output = job_dir + "/output.log";
            spec.own_process_group = true;
            running[start_child(spec)] = {next, Clock::now()};
            ++next;
        }
        if (running.empty()) break;
        int status = 0;
        const pid_t done = ::waitpid(-1, &status, 0);
        if (done < 0) {
            if (errno == EINTR) continue;
            throw Error(std::string("sweep: waiting for the runs: ") + std::strerror(errno));
        }
        auto it = running.find(done);
        if (it == running.end()) continue;
        forget_child(done);
        const auto [index, began] = it->second;
        running.erase(it);
        sweep::JobResult &r = results[index];
        r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        r.status = r.ok ? "ok" : status_text(status) + " (see " + r.job.folder + "/output.log)";
        try {
            r.runs = runs_of(dir + "/" + r.job.folder);
        } catch (const std::exception &e) {
            r.ok = false;
            r.status = std::string("its metrics could not be read: ") + e.what();
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
        std::printf("[%zu/%zu] %s: %s (%.1f s)\n", ++finished, jobs.size(), joined(r.job.overrides, " ").c_str(),
                    r.status.c_str(), seconds);
        std::fflush(stdout);
    }
    for (size_t i = next; i < jobs.size(); ++i) results[i] = {jobs[i], false, false, "not run (interrupted)", {}};

    const std::vector<sweep::Row> rows = sweep::summarise(results);
    const std::string markdown = sweep::markdown_table(grid, rows);
    write_file_atomic(dir + "/summary.md", markdown);
    write_file_atomic(dir + "/summary.csv", sweep::csv_table(grid, rows));
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("\n%s\n%s/summary.md and summary.csv written (%.1f s). Overlay the runs: cdrmix gui --watch %s/point-*/*/\n",
                markdown.c_str(), dir.c_str(), wall, dir.c_str());
    if (interrupted()) return 130;
    const bool all_ok = std::all_of(results.begin(), results.end(), [](const auto &r) { return r.ok; });
    if (!all_ok) std::fprintf(stderr, "cdrmix sweep: some runs failed; the table names them\n");
    return all_ok ? 0 : 1;
}

} // namespace cdrmix
