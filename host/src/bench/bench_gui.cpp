// Row 8 of `cdrmix bench`: what the dashboard costs a training run. Rounds of
// the same short training alternate between headless and with the window open,
// wired as `cdrmix gui` wires it: the Trainer on a worker thread publishing to
// a QueueSink, the window on the main thread taking the records each frame.
#include "bench/bench_table.hpp"
#include "bench/bench_workloads.hpp"

#ifdef CDRMIX_WITH_DASHBOARD
#include <app.hpp>
#include <dashboard.hpp>
#endif

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace cdrmix::bench {

namespace {

const char *kRowName = "8 training tok/s, dashboard open vs headless";

#ifdef CDRMIX_WITH_DASHBOARD

bool has_display() {
    for (const char *var : {"DISPLAY", "WAYLAND_DISPLAY"})
        if (const char *v = std::getenv(var); v && *v) return true;
    return false;
}

// CPU seconds this thread has used.
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// CPU seconds used by this process's threads whose name starts with `prefix`:
// Mesa's software renderer draws on threads named llvmpipe-N.
double named_threads_cpu_seconds(const std::string &prefix) {
    long ticks = 0;
    std::error_code ec;
    for (const auto &task : fs::directory_iterator("/proc/self/task", ec)) {
        std::ifstream in(task.path() / "stat");
        std::string line;
        std::getline(in, line);
        const size_t open = line.find('('), close = line.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close < open ||
            line.compare(open + 1, prefix.size(), prefix) != 0)
            continue;
        std::istringstream fields(line.substr(close + 2)); // from field 3 (state) on
        std::string skip;
        for (int field = 3; field < 14; ++field) fields >> skip;
        long utime = 0, stime = 0; // fields 14 and 15, in clock ticks
        fields >> utime >> stime;
        ticks += utime + stime;
    }
    return double(ticks) / double(sysconf(_SC_CLK_TCK));
}

// The window's CPU: its own (main) thread and the renderer's threads.
double window_cpu_seconds() { return thread_cpu_seconds() + named_threads_cpu_seconds("llvmpipe"); }

struct Round {
    double tokens_per_s = 0;
    double train_seconds = 0; // wall time of the training
    double window_cpu_s = 0;  // CPU the window used meanwhile
};

// Trains on a worker thread, as the dashboard's script runs, once `start` is
// set; `body` runs on this thread meanwhile.
template <class Body> Round train_beside(const TrainingRun &t, std::atomic<bool> &start, Body body) {
    std::atomic<bool> done{false};
    Round round;
    std::exception_ptr error;
    std::thread worker([&] {
        while (!start) std::this_thread::sleep_for(std::chrono::milliseconds(1)); // the window starting up
        const auto t0 = std::chrono::steady_clock::now();
        try {
            round.tokens_per_s = train(t).tokens_per_s;
        } catch (...) {
            error = std::current_exception();
        }
        round.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        done = true;
    });
    try {
        round.window_cpu_s = body(done);
    } catch (...) {
        start = true;
        worker.join();
        throw;
    }
    worker.join();
    if (error) std::rethrow_exception(error);
    return round;
}

Round headless_round(const TrainingRun &t) {
    std::atomic<bool> start{true};
    return train_beside(t, start, [](const std::atomic<bool> &) { return 0.0; });
}

Round window_round(TrainingRun t) {
    auto queue = std::make_shared<QueueSink>();
    t.sinks.push_back(queue);
    std::atomic<bool> start{false};
    return train_beside(t, start, [&](const std::atomic<bool> &done) {
        ui::Dashboard dashboard;
        const size_t index = dashboard.add_run("bench");
        ui::AppOptions app;
        app.title = "cdrmix bench: the dashboard's cost";
        app.frames = 1; // once training is done: one frame, then the window closes
        int polls = 0;
        double cpu_at_start = 0, cpu_at_end = -1;
        ui::AppHooks hooks;
        hooks.poll = [&] {
            // The window polls again only after drawing its first frame (fonts,
            // shaders): training starts then, so what it measures is an open
            // window's steady cost, as in a run of any length, not its start-up.
            if (++polls == 2) {
                cpu_at_start = window_cpu_seconds();
                start = true;
            }
            if (done && cpu_at_end < 0) cpu_at_end = window_cpu_seconds();
            const auto records = queue->drain();
            for (const auto &r : records) dashboard.ingest(index, r);
            return !records.empty();
        };
        hooks.data_complete = [&] { return done.load(); };
        ui::run_app(dashboard, app, hooks);
        return cpu_at_end - cpu_at_start;
    });
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif

} // namespace

void gui_row(Run &run) {
#ifndef CDRMIX_WITH_DASHBOARD
    print_row(kRowName, "skipped", "built without the dashboard", "-");
    (void)run;
#else
    if (!has_display()) {
        print_row(kRowName, "skipped", "no display: run scripts/bench.sh, which uses xvfb-run", "-");
        return;
    }
    TrainingRun t;
    t.batch_size = 8;
    t.seq_len = 128;
    t.steps = run.options.quick ? 10 : 12;
    TempDir dir;
    write_corpus(dir.file("corpus.txt"), 1 << 20);
    t.data = run.registry.create_data_source(
        Config(Json{{"type", "text"}, {"path", dir.file("corpus.txt")}, {"tokenizer", "char"}}, "bench gui", ""));
    t.model = small_model(run.registry, rwkv7_mixer(), t.data->tokenizer()->vocab_size());
    // Pairs of rounds, in the order headless-open, open-headless, ...: a drift in
    // the machine's load falls on both sides alike; each pair gives one ratio.
    const int pairs = run.options.quick ? 2 : 8;
    std::vector<double> headless, window, ratios, window_cpu;
    try {
        for (int i = 0; i < pairs; ++i) {
            const bool open_first = i % 2 == 1;
            const Round first = open_first ? window_round(t) : headless_round(t);
            const Round second = open_first ? headless_round(t) : window_round(t);
            const Round &h = open_first ? second : first, &w = open_first ? first : second;
            headless.push_back(h.tokens_per_s);
            window.push_back(w.tokens_per_s);
            ratios.push_back(w.tokens_per_s / h.tokens_per_s);
            window_cpu.push_back(w.window_cpu_s / w.train_seconds);
        }
    } catch (const ui::DisplayError &e) {
        print_row(kRowName, "skipped", e.what(), "-");
        return;
    }
    const std::string shape = " (B" + std::to_string(t.batch_size) + " T" + std::to_string(t.seq_len) + ", " +
                              std::to_string(t.steps) + " steps)";
    print_row(kRowName + shape, format("%.0f tok/s", median(window)), format("headless %.0f tok/s", median(headless)),
              format("cost %.1f%% (target <= 5%%)", 100.0 * (1.0 - median(ratios))));
    // Every pair, in the order run: the spread is the noise the median sits in.
    std::string h_all, w_all, r_all;
    for (int i = 0; i < pairs; ++i) {
        h_all += format(i ? " %.0f" : "%.0f", headless[i]);
        w_all += format(i ? " %.0f" : "%.0f", window[i]);
        r_all += format(i ? " %.2f" : "%.2f", ratios[i]);
    }
    print_row("  each pair (tok/s; open / headless)", "open " + w_all, "headless " + h_all, r_all);
    // What the window takes from training on a machine whose cores training keeps
    // busy, whatever else runs on it: the steadier figure on a shared machine.
    const double cores = std::max(1u, std::thread::hardware_concurrency());
    print_row("  window CPU while training (thread + llvmpipe)", format("%.1f ms/s", 1e3 * median(window_cpu)),
              format("%.0f cores", cores), format("%.1f%% of the machine", 100.0 * median(window_cpu) / cores));
#endif
}

} // namespace cdrmix::bench
