#include "cli/gui_session.hpp"

#include "cli/gui_sampler.hpp"
#include "lua/lua_util.hpp"
#include "metrics/metrics.hpp"

#include <cdrmix/error.hpp>

#include <data/jsonl_follower.hpp>
#include <data/run_source.hpp>

#include <cstdio>
#include <filesystem>
#include <thread>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

void print_frame_stats(const ui::FrameStats &s, const ui::Dashboard &d) {
    if (s.frames == 0) return;
    std::fprintf(stderr, "cdrmix gui: %d frames; after the first: %.2f ms mean (%.2f ms building, the rest drawing), %.2f ms max per frame;",
                 s.frames, s.mean_ms, s.mean_build_ms, s.max_ms);
    for (size_t i = 0; i < d.run_count(); ++i)
        std::fprintf(stderr, " %s: %lld records, %zu steps;", d.run(i).name.c_str(),
                     static_cast<long long>(d.run(i).records), d.run(i).loss.size());
    std::fprintf(stderr, "\n");
}

} // namespace

class ScriptSession::BoundarySink : public MetricsSink {
public:
    explicit BoundarySink(ScriptSession &s) : session_(s) {}
    void write(const Json &record) override { session_.on_record(record); }

private:
    ScriptSession &session_;
};

ScriptSession::ScriptSession(lua::RunOptions options) : runtime_(std::move(options)) {
    runtime_.bus().add_sink(queue_);
    runtime_.bus().add_sink(std::make_shared<BoundarySink>(*this));
}

ScriptSession::~ScriptSession() {
    if (worker_.joinable()) worker_.join();
}

void ScriptSession::start() {
    worker_ = std::thread([this] {
        int code = 1;
        try {
            code = runtime_.run();
        } catch (const std::exception &e) {
            std::fprintf(stderr, "cdrmix: error: %s\n", lua::exception_message(e).c_str());
        }
        exit_code_ = code;
        finished_ = true;
    });
}

int ScriptSession::join() {
    worker_.join();
    return exit_code_;
}

std::string ScriptSession::state() const {
    if (finished_) return exit_code_ == 0 ? "finished" : "script failed (see the terminal)";
    if (stop_requested_ || control().stop) return "stopping after this step";
    if (control().pause) return "paused";
    if (pause_requested_) return "pausing after this step";
    return in_training_ ? "training" : "running the script";
}

void ScriptSession::resume() {
    pause_requested_ = false;
    control().pause = false;
}

void ScriptSession::stop() {
    stop_requested_ = true;
    pause_requested_ = false;
    // A paused trainer would leave without a checkpoint; let it take one more step and stop there.
    control().pause = false;
    if (!in_training_) control().stop = true;
}

void ScriptSession::sample(const ui::SampleRequest &r) {
    SampleJob job{r.prompt, r.max_tokens, r.temperature, r.top_k};
    std::lock_guard<std::mutex> lock(mutex_);
    // The weights stand still while paused (the snapshot was taken as the pause began) and between trainers.
    if (latest_ && (control().pause || !in_training_)) {
        sampler_.start(latest_, std::move(job));
        return;
    }
    pending_ = std::move(job);
    snapshot_wanted_ = true;
    sampler_.set_waiting(in_training_ ? "waiting for the next step boundary" : "waiting for training to start");
}

ui::SampleView ScriptSession::sample_view() const {
    const auto v = sampler_.view();
    return {v.text, v.status, v.busy};
}

// At a step boundary: the optimiser step is done, and the trainer reads the
// RunControl flags right after this record is published.
void ScriptSession::on_record(const Json &r) {
    const std::string event = r.value("event", "");
    if (event != "step" && event != "end") return;
    const int64_t step = r.value("step", int64_t(0));
    in_training_ = event == "step";
    if (stop_requested_) control().stop = true;
    const bool pause_now = event == "step" && pause_requested_.exchange(false) && !stop_requested_;
    if (pause_now || event == "end" || snapshot_wanted_.exchange(false)) {
        const lua::TrainingTarget target = runtime_.training_target();
        if (target.model) {
            auto snapshot = snapshot_weights(*target.model, target.tokenizer, step);
            std::lock_guard<std::mutex> lock(mutex_);
            latest_ = std::move(snapshot);
            if (pending_) {
                sampler_.start(latest_, std::move(*pending_));
                pending_.reset();
            }
        }
    }
    if (pause_now) control().pause = true;
}

int run_script_gui(lua::RunOptions run, const ui::AppOptions &app_options) {
    ui::Dashboard dashboard;
    const size_t index = dashboard.add_run(fs::path(run.script).stem().string());
    ScriptSession session(std::move(run));
    dashboard.set_live(&session);
    session.start();
    int64_t seen_revision = -1;
    std::string seen_state;
    ui::AppHooks hooks;
    hooks.poll = [&] {
        const auto records = session.take_records();
        for (const auto &r : records) dashboard.ingest(index, r);
        const int64_t revision = session.sample_revision();
        std::string state = session.state();
        const bool changed = !records.empty() || revision != seen_revision || state != seen_state;
        seen_revision = revision;
        seen_state = std::move(state);
        return changed;
    };
    hooks.data_complete = [&] { return session.finished(); };
    ui::FrameStats stats;
    try {
        stats = ui::run_app(dashboard, app_options, hooks);
    } catch (...) {
        session.stop();
        session.join();
        throw;
    }
    print_frame_stats(stats, dashboard);
    if (!session.finished()) {
        std::fprintf(stderr, "cdrmix gui: window closed: stopping the run after the current step, with a checkpoint\n");
        session.stop();
    }
    return session.join();
}

int run_watch_gui(const std::vector<std::string> &paths, const ui::AppOptions &app_options) {
    ui::Dashboard dashboard;
    std::vector<ui::JsonlFollower> followers;
    for (const auto &p : paths) {
        ui::RunSource source;
        try {
            source = ui::run_source(p);
        } catch (const std::exception &e) {
            throw Error(std::string("--watch ") + e.what());
        }
        dashboard.add_run(source.name);
        followers.emplace_back(source.metrics);
    }
    ui::AppHooks hooks;
    hooks.poll = [&] {
        bool changed = false;
        for (size_t i = 0; i < followers.size(); ++i)
            for (const auto &r : followers[i].poll()) {
                dashboard.ingest(i, r);
                changed = true;
            }
        return changed;
    };
    hooks.data_complete = [&] {
        for (const auto &f : followers)
            if (!f.caught_up()) return false;
        return true;
    };
    const ui::FrameStats stats = ui::run_app(dashboard, app_options, hooks);
    print_frame_stats(stats, dashboard);
    for (const auto &f : followers)
        if (f.bad_lines() > 0)
            std::fprintf(stderr, "cdrmix gui: warning: %s: %lld lines were not JSON and were skipped\n", f.path().c_str(),
                         static_cast<long long>(f.bad_lines()));
    return 0;
}

} // namespace cdrmix
