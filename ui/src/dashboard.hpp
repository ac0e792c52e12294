// The dashboard's contents: the runs it shows, the view settings, and one
// ImGui frame of panels (loss, expert load, routing, system, controls,
// sampling). It knows nothing of LibTorch: runs arrive as JSON records, and a
// live run is steered through the LiveRun interface the host implements.
#pragma once

#include "data/inspection.hpp"
#include "data/run_data.hpp"

#include <imgui.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cdrmix::ui {

struct SampleRequest {
    std::string prompt;
    int max_tokens = 200;
    float temperature = 0.8f;
    int top_k = 40;
};

struct SampleView {
    std::string text;   // generated so far
    std::string status; // e.g. "weights of step 120", "waiting for a step boundary", an error
    bool busy = false;
};

struct InspectView {
    nlohmann::json routing; // `cdrmix inspect --json`'s routing of the last text; null before the first
    std::string status;     // e.g. "routing with the weights of step 120", an error
    bool busy = false;
};

struct SpecialiseRequest {
    int batches = 8;          // of the trainer's batch size and length
    bool train_split = false; // val (held out) unless set
    int top = 8;              // tokens listed per expert
};

struct SpecialisationView {
    nlohmann::json specialisation; // parse_specialisation's input; null before the first
    std::string status;            // e.g. "over 8192 val tokens with the weights of step 120", an error
    bool busy = false;
};

struct SwapRequest {
    int layer = -1;          // a layer id as in the records; -1: every MoE layer
    std::string router_type; // a registered router
    std::string options;     // more router keys as a JSON object ("" for none), e.g. {"top_k": 1}
};

// What the dashboard can ask of a run in this process (absent when watching files).
class LiveRun {
public:
    virtual ~LiveRun() = default;
    virtual std::string state() const = 0; // "running", "pausing", "paused", "stopping", "finished", ...
    virtual bool paused() const = 0;
    virtual bool finished() const = 0;
    virtual void pause() = 0;
    virtual void resume() = 0;
    virtual void stop() = 0;
    virtual void checkpoint_now() = 0;
    virtual bool checkpoint_pending() const = 0;
    virtual void sample(const SampleRequest &request) = 0;
    virtual SampleView sample_view() const = 0;
    // The routing inspector: routes the text through the weights of the next step boundary.
    virtual void inspect(const std::string &text) = 0;
    virtual InspectView inspect_view() const = 0;
    // The specialisation view: which tokens each expert receives over a sample
    // of the run's data, with the weights of the next step boundary.
    virtual void specialise(const SpecialiseRequest &request) = 0;
    virtual SpecialisationView specialisation_view() const = 0;
    // Router hot-swap at the next step boundary (trainer:swap_router), keeping the experts.
    virtual std::vector<std::string> router_types() const = 0;
    virtual void swap_router(const SwapRequest &request) = 0;
    virtual std::string swap_outcome() const = 0; // "" before the first request
};

// Branches of a run from its checkpoints (`cdrmix branch`, started as a
// process): a branch's run folder joins the dashboard, overlaid, when it
// appears. Present in both modes, live and watching.
class Branching {
public:
    virtual ~Branching() = default;
    virtual std::vector<std::string> router_types() const = 0;
    // run_dir: a shown run's folder; step: one of its checkpoints.
    virtual void branch(const std::string &run_dir, int64_t step, const SwapRequest &swap) = 0;
    virtual std::string status() const = 0; // "" before the first branch
};

class Dashboard {
public:
    // Runs keep the colour of the order they were added in.
    size_t add_run(std::string name);
    void ingest(size_t run, const Json &record) { ui::ingest(runs_[run].data, record); }
    // The live run and its index among the runs (its folder is where a swap's branch starts).
    void set_live(LiveRun *live, size_t run) { live_ = live, live_run_ = run; }
    void set_branching(Branching *branching) { branching_ = branching; }
    void set_status(std::string status) { status_ = std::move(status); }
    // Opens the routing inspector on this text, asks the live run to route it
    // and selects its first token once the routing arrives.
    void open_inspector(const std::string &text);
    // Opens the specialisation view and asks the live run to count.
    void open_specialisation();
    const RunData &run(size_t i) const { return runs_[i].data; }
    size_t run_count() const { return runs_.size(); }

    // Draws one frame's panels over the whole viewport.
    void draw();

    static ImU32 run_colour(size_t index);

private:
    struct RunView {
        RunData data;
        ImU32 colour;
        // Smoothed train loss, recomputed only when the data or the weight changes.
        std::vector<double> smoothed;
        int64_t smoothed_version = -1;
        float smoothed_weight = -1;
    };

    void draw_header();
    void draw_loss(float height);
    void draw_expert_load();
    void draw_routing(float plot_height);
    void draw_system(float plot_height);
    void draw_logged(float plot_height);
    void draw_ranks(float plot_height);
    void draw_tools(); // tabs: sampling, inspector and swap (live), branching
    // The swap's layer, router and options controls (shared by swap and branch); fills request.
    bool draw_router_choice(const std::vector<std::string> &types, SwapRequest &request);
    void draw_branch();
    void draw_sampling();
    void draw_inspector();
    void draw_token_routing(size_t token) const;
    void draw_specialisation();
    void draw_swap();
    // A swap asked for as a branch: once the live run's checkpoint is written, branch from it.
    void start_pending_branch();
    const std::vector<double> &x_of(const Series &s) const { return by_time_ ? s.time : s.step; }
    const char *x_label() const { return by_time_ ? "seconds" : "step"; }
    ImU32 layer_colour(size_t run, size_t layer, size_t layers) const;
    uint64_t smoothed_revision(const RunView &v) const;

    std::vector<RunView> runs_;
    LiveRun *live_ = nullptr;
    size_t live_run_ = 0;
    Branching *branching_ = nullptr;
    std::string status_;
    float smoothing_ = 0.6f; // TensorBoard's default
    bool log_loss_ = true, by_time_ = false;
    int load_window_ = 20;
    std::vector<double> swap_marks_; // every run's router swaps, in the plots' x units (refreshed each frame)
    int moe_run_ = 0;
    char prompt_[512] = "The ";
    SampleRequest sample_;
    // Inspector: the text, its parsed routing (re-parsed when the JSON changes), the selection.
    char inspect_text_[512] = "The quick brown fox jumps over the lazy dog.";
    nlohmann::json inspected_json_;
    Inspection inspection_;
    std::string inspection_error_;
    int inspect_layer_ = 0, selected_token_ = -1;
    bool open_inspector_ = false, select_first_token_ = false;
    // Specialisation: the request, its parsed result (re-parsed when the JSON changes), the layer shown.
    SpecialiseRequest specialise_;
    nlohmann::json specialised_json_;
    Specialisation specialisation_;
    std::string specialisation_error_;
    int specialise_layer_ = 0;
    bool open_specialisation_ = false;
    // Swap: the chosen layer (0: all) and router, and extra router keys.
    int swap_layer_ = 0, swap_router_ = 0;
    char swap_options_[256] = "";
    // "As a branch": the swap waits for a checkpoint of the live run beyond this many.
    bool swap_as_branch_ = false;
    struct PendingBranch {
        SwapRequest swap;
        size_t checkpoints_before = 0;
    };
    std::optional<PendingBranch> pending_branch_;
    int branch_run_ = 0, branch_checkpoint_ = 0;
};

} // namespace cdrmix::ui
