// `cdrmix gui`: the dashboard on the main thread, fed either by a Lua script
// running on a worker thread in this process (with run controls and sampling)
// or by metrics.jsonl files that other processes write (--watch).
#pragma once

#include "cli/gui_branches.hpp"
#include "cli/gui_sampler.hpp"
#include "lua/runtime.hpp"
#include "metrics/metrics.hpp"

#include <app.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace cdrmix {

// A script running on a worker thread, steered by the dashboard. Pause, stop
// and weight snapshots take effect at step boundaries: the training thread
// publishes each step's record synchronously, and this session's sink acts on
// it right there, before the trainer goes on to its next step.
class ScriptSession final : public ui::LiveRun {
public:
    explicit ScriptSession(lua::RunOptions options);
    ~ScriptSession() override; // joins the worker

    void start();
    int join(); // the script's exit code
    std::vector<Json> take_records() { return queue_->drain(); }
    int64_t sample_revision() const { return sampler_.view().revision; }

    // ---- ui::LiveRun (main thread) ----
    std::string state() const override;
    bool paused() const override { return control().pause || pause_requested_; }
    bool finished() const override { return finished_; }
    void pause() override { pause_requested_ = true; }
    void resume() override;
    void stop() override;
    void checkpoint_now() override { control().checkpoint_now = true; }
    bool checkpoint_pending() const override { return control().checkpoint_now; }
    void sample(const ui::SampleRequest &request) override;
    ui::SampleView sample_view() const override;
    void inspect(const std::string &text) override;
    ui::InspectView inspect_view() const override;
    void specialise(const ui::SpecialiseRequest &request) override;
    ui::SpecialisationView specialisation_view() const override;
    std::vector<std::string> router_types() const override { return registered_routers(); }
    void swap_router(const ui::SwapRequest &request) override;
    std::string swap_outcome() const override { return control().swap_outcome(); }

private:
    class BoundarySink;
    RunControl &control() const { return const_cast<lua::Runtime &>(runtime_).control(); }
    void on_record(const Json &record); // training thread

    lua::Runtime runtime_;
    std::shared_ptr<QueueSink> queue_ = std::make_shared<QueueSink>();
    std::atomic<bool> finished_{false}, in_training_{false}, pause_requested_{false}, stop_requested_{false},
        snapshot_wanted_{false};
    std::atomic<int> exit_code_{0};
    // Whether a job may start from latest_ now: the weights stand still while
    // paused (the snapshot was taken as the pause began) and between trainers.
    bool weights_still() const;

    // A specialisation job for these weights, with the trainer's data and shape (the request's defaults).
    std::optional<SpecialisationJob> specialisation_job(const ui::SpecialiseRequest &request,
                                                        const lua::TrainingTarget &target);

    std::mutex mutex_; // latest_ and the pending jobs
    std::shared_ptr<const WeightSnapshot> latest_;
    std::optional<SampleJob> pending_;
    std::optional<std::string> pending_inspect_;
    std::optional<ui::SpecialiseRequest> pending_specialise_;
    SampleWorker sampler_;
    std::thread worker_;
};

// What the window opens once the script has ended (for screenshots and tests).
struct GuiFinale {
    std::string inspect;         // "" or a text the routing inspector routes
    bool specialisation = false; // count the experts' specialisation
};

// Branches started from the window follow in it (branches: its Branch tab).
int run_script_gui(lua::RunOptions run, const ui::AppOptions &app, BranchLauncher &branches, const GuiFinale &finale = {});

// Shows the runs in these directories (or metrics.jsonl files), following them as they grow.
int run_watch_gui(const std::vector<std::string> &paths, const ui::AppOptions &app, BranchLauncher &branches);

} // namespace cdrmix
