// The dashboard's contents: the runs it shows, the view settings, and one
// ImGui frame of panels (loss, expert load, routing, system, controls,
// sampling). It knows nothing of LibTorch: runs arrive as JSON records, and a
// live run is steered through the LiveRun interface the host implements.
#pragma once

#include "data/run_data.hpp"

#include <imgui.h>

#include <map>
#include <memory>
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
};

class Dashboard {
public:
    // Runs keep the colour of the order they were added in.
    size_t add_run(std::string name);
    void ingest(size_t run, const Json &record) { ui::ingest(runs_[run].data, record); }
    void set_live(LiveRun *live) { live_ = live; }
    void set_status(std::string status) { status_ = std::move(status); }
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
    void draw_sampling();
    const std::vector<double> &x_of(const Series &s) const { return by_time_ ? s.time : s.step; }
    const char *x_label() const { return by_time_ ? "seconds" : "step"; }
    ImU32 layer_colour(size_t run, size_t layer, size_t layers) const;
    uint64_t smoothed_revision(const RunView &v) const;

    std::vector<RunView> runs_;
    LiveRun *live_ = nullptr;
    std::string status_;
    float smoothing_ = 0.6f; // TensorBoard's default
    bool log_loss_ = true, by_time_ = false;
    int load_window_ = 20;
    std::vector<double> swap_marks_; // every run's router swaps, in the plots' x units (refreshed each frame)
    int moe_run_ = 0;
    char prompt_[512] = "The ";
    SampleRequest sample_;
};

} // namespace cdrmix::ui
