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

bool ScriptSession::weights_still() const { return control().pause || !in_training_; }

void ScriptSession::sample(const ui::SampleRequest &r) {
    SampleJob job{r.prompt, r.max_tokens, r.temperature, r.top_k};
    std::lock_guard<std::mutex> lock(mutex_);
    if (latest_ && weights_still()) {
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

void ScriptSession::inspect(const std::string &text) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (latest_ && weights_still()) {
        sampler_.inspect(latest_, text);
        return;
    }
    pending_inspect_ = text;
    snapshot_wanted_ = true;
    sampler_.set_inspect_waiting(in_training_ ? "waiting for the next step boundary" : "waiting for training to start");
}

ui::InspectView ScriptSession::inspect_view() const {
    const auto v = sampler_.view();
    return {v.routing, v.inspect_status, v.inspect_busy};
}

std::optional<SpecialisationJob> ScriptSession::specialisation_job(const ui::SpecialiseRequest &r,
                                                                   const lua::TrainingTarget &target) {
    if (!target.data) {
        sampler_.set_specialise_status("error: the trainer's data source was not made by cdrmix.data, so there is "
                                              "no config to sample from");
        return std::nullopt;
    }
    // A copy with its own record of read keys (copies of a Config share one), for the sampler's thread.
    const Config &d = *target.data;
    Config data(d.value(), d.owner(), d.source(), d.sources(), d.path());
    return SpecialisationJob{std::move(data), r.train_split, r.batches, target.batch_size, target.seq_len, r.top};
}

void ScriptSession::specialise(const ui::SpecialiseRequest &r) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (latest_ && weights_still()) {
        if (auto job = specialisation_job(r, runtime_.training_target())) sampler_.specialise(latest_, std::move(*job));
        return;
    }
    pending_specialise_ = r;
    snapshot_wanted_ = true;
    sampler_.set_specialise_waiting(in_training_ ? "waiting for the next step boundary" : "waiting for training to start");
}

ui::SpecialisationView ScriptSession::specialisation_view() const {
    const auto v = sampler_.view();
    return {v.specialisation, v.specialise_status, v.specialise_busy};
}

void ScriptSession::swap_router(const ui::SwapRequest &r) {
    Json router = Json::object();
    if (!r.options.empty()) {
        router = Json::parse(r.options, nullptr, false);
        if (router.is_discarded() || !router.is_object()) {
            control().set_swap_outcome("swap not sent: the options are not a JSON object: " + r.options);
            return;
        }
    }
    router["type"] = r.router_type;
    control().request_swap({{"layer", r.layer < 0 ? Json("all") : Json(r.layer)}, {"router", std::move(router)}});
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
            if (pending_inspect_) {
                sampler_.inspect(latest_, std::move(*pending_inspect_));
                pending_inspect_.reset();
            }
            if (pending_specialise_) {
                if (auto job = specialisation_job(*pending_specialise_, target)) sampler_.specialise(latest_, std::move(*job));
                pending_specialise_.reset();
            }
        }
    }
    if (pause_now) control().pause = true;
}

namespace {

// Runs written by other processes (watched folders, branches) shown beside the live one.
struct Followed {
    ui::Dashboard &dashboard;
    std::vector<std::pair<size_t, ui::JsonlFollower>> followers; // (dashboard run index, its metrics)

    // A run folder, a metrics.jsonl, or a folder of runs (ui::run_sources: runs/, a sweep).
    void add(const std::string &path) {
        std::vector<ui::RunSource> sources;
        try {
            sources = ui::run_sources(path);
        } catch (const std::exception &e) {
            throw Error(std::string("--watch ") + e.what());
        }
        for (const auto &source : sources)
            followers.emplace_back(dashboard.add_run(source.name), ui::JsonlFollower(source.metrics));
    }
    bool poll() {
        bool changed = false;
        for (auto &[index, follower] : followers)
            for (const auto &r : follower.poll()) {
                dashboard.ingest(index, r);
                changed = true;
            }
        return changed;
    }
    bool caught_up() const {
        for (const auto &f : followers)
            if (!f.second.caught_up()) return false;
        return true;
    }
    void warn_bad_lines() const {
        for (const auto &[index, f] : followers)
            if (f.bad_lines() > 0)
                std::fprintf(stderr, "cdrmix gui: warning: %s: %lld lines were not JSON and were skipped\n", f.path().c_str(),
                             static_cast<long long>(f.bad_lines()));
    }
};

} // namespace

int run_script_gui(lua::RunOptions run, const ui::AppOptions &app_options, BranchLauncher &branches,
                   const GuiFinale &finale) {
    ui::Dashboard dashboard;
    const size_t index = dashboard.add_run(fs::path(run.script).stem().string());
    ScriptSession session(std::move(run));
    dashboard.set_live(&session, index);
    dashboard.set_branching(&branches);
    Followed followed{dashboard, {}};
    session.start();
    int64_t seen_revision = -1;
    std::string seen_state;
    ui::AppHooks hooks;
    bool finale_asked = false;
    const bool has_finale = !finale.inspect.empty() || finale.specialisation;
    hooks.poll = [&] {
        const auto records = session.take_records();
        for (const auto &r : records) dashboard.ingest(index, r);
        if (has_finale && !finale_asked && session.finished()) {
            if (finale.specialisation) dashboard.open_specialisation();
            if (!finale.inspect.empty()) dashboard.open_inspector(finale.inspect);
            finale_asked = true;
        }
        const int64_t revision = session.sample_revision();
        std::string state = session.state();
        bool changed = !records.empty() || revision != seen_revision || state != seen_state;
        changed |= branches.poll([&](const std::string &folder) { followed.add(folder); });
        changed |= followed.poll();
        seen_revision = revision;
        seen_state = std::move(state);
        return changed;
    };
    hooks.data_complete = [&] {
        return session.finished() && (!has_finale || (finale_asked && !session.inspect_view().busy &&
                                                        !session.specialisation_view().busy));
    };
    ui::FrameStats stats;
    try {
        stats = ui::run_app(dashboard, app_options, hooks);
    } catch (...) {
        session.stop();
        session.join();
        throw;
    }
    print_frame_stats(stats, dashboard);
    if (!finale.inspect.empty()) {
        const ui::InspectView v = session.inspect_view();
        const size_t tokens = v.routing.is_object() && v.routing.contains("tokens") ? v.routing["tokens"].size() : 0;
        std::fprintf(stderr, "cdrmix gui: inspector: %zu tokens routed (%s)\n", tokens, v.status.c_str());
    }
    if (finale.specialisation) {
        const ui::SpecialisationView v = session.specialisation_view();
        const size_t layers = v.specialisation.is_object() ? v.specialisation.value("layers", Json::array()).size() : 0;
        std::fprintf(stderr, "cdrmix gui: specialisation: %zu MoE layers (%s)\n", layers, v.status.c_str());
    }
    if (!session.finished()) {
        std::fprintf(stderr, "cdrmix gui: window closed: stopping the run after the current step, with a checkpoint\n");
        session.stop();
    }
    return session.join();
}

int run_watch_gui(const std::vector<std::string> &paths, const ui::AppOptions &app_options, BranchLauncher &branches) {
    ui::Dashboard dashboard;
    dashboard.set_branching(&branches);
    Followed followed{dashboard, {}};
    for (const auto &p : paths) followed.add(p);
    ui::AppHooks hooks;
    hooks.poll = [&] {
        bool changed = branches.poll([&](const std::string &folder) { followed.add(folder); });
        return followed.poll() || changed;
    };
    hooks.data_complete = [&] { return followed.caught_up(); };
    const ui::FrameStats stats = ui::run_app(dashboard, app_options, hooks);
    print_frame_stats(stats, dashboard);
    followed.warn_bad_lines();
    return 0;
}

} // namespace cdrmix
