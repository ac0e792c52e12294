// One run's metrics as the dashboard keeps them: every point of every series,
// built from the metrics bus's JSON records (the same records metrics.jsonl
// holds), so a live run and a watched run directory look alike.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cdrmix::ui {

using Json = nlohmann::json;

// A scalar over time. step and time (seconds since the run's first record) are
// both ascending; a point whose step is not after the last one (a resumed run
// publishing a step again) replaces everything from that step on.
struct Series {
    std::vector<double> step, time, value;

    void add(double step, double time, double value);
    bool empty() const { return value.empty(); }
    size_t size() const { return value.size(); }
    double last() const { return value.back(); }
    double min() const; // over finite values
    double max() const;
};

// Router statistics of one MoE layer, one entry per step record.
struct LayerStats {
    int64_t layer = 0;
    Series token_entropy, load_entropy, dropped_tokens, dead_experts, load_cv;
    std::map<std::string, Series> losses;  // e.g. load_balance, z_loss
    int64_t num_experts = 0;
    std::vector<double> load_step;          // step of each row of tokens_per_expert
    std::vector<float> tokens_per_expert;   // rows of num_experts counts, one row per step
};

struct RunData {
    std::string name;
    int64_t version = 0; // bumped by every accepted record: caches key on it
    double t0 = -1;      // unix time of the first record
    int64_t total_steps = 0;
    int64_t records = 0;
    Series loss, val_loss, lr, grad_norm, tokens_per_s, aux_loss, step_time, rss_mb;
    Series device_mem_mb; // GPU memory in use, when the run's models live on one
    // Multi-process runs: the slowest rank's wait on communication per step, and each rank's tokens/s.
    Series comm_s;
    std::vector<Series> rank_tokens_per_s;
    std::vector<LayerStats> layers;          // ordered by layer index
    std::map<std::string, Series> logged;    // numbers from cdrmix.log{...}
    std::vector<std::string> checkpoints;    // paths, in order
    Series swaps;                            // router swaps (Trainer::swap_router): value = swaps so far
    bool ended = false;
    double run_tokens_per_s = -1; // the end record's: tokens over the whole run's time (-1 before it)
    double eta_s = -1;
    std::string dir;
    std::string run_name; // the run's own name, from its "run" record ("" before it)

    LayerStats &layer(int64_t index);
};

// Adds one record (any event; unknown events are counted and ignored).
void ingest(RunData &run, const Json &record);

// The steps of the run's checkpoints (checkpoint records' paths ending in a
// step's folder; not "latest"), each once, in the order written.
std::vector<int64_t> checkpoint_steps(const RunData &run);
// The step of the newest checkpoint among those written after the first
// `before` checkpoint records, or -1 while there is none: a swap asked for as a
// branch waits for the checkpoint it asked for.
int64_t checkpoint_step_after(const RunData &run, size_t before);

// Utilisation of each expert over the last `window` steps of a layer: tokens
// it received divided by a fair share (total / E). 1 = fair, 0 = dead.
std::vector<double> recent_utilisation(const LayerStats &layer, int window);

} // namespace cdrmix::ui
