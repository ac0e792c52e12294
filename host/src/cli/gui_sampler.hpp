// The dashboard's sampling, routing-inspector and specialisation panels: text
// generated from, a text's routing and the experts' specialisation over a
// held-out sample read off, a copy of the trained weights on a thread of its
// own, so training never waits for any of them. The copy is taken by the
// training thread at a step boundary (snapshot_weights), when no optimiser
// step is half-done.
#pragma once

#include "model/model.hpp"

#include <cdrmix/config.hpp>
#include <cdrmix/tokenizer.hpp>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cdrmix {

struct WeightSnapshot {
    int64_t step = 0;
    ModelSpec spec;
    std::shared_ptr<Tokenizer> tokenizer;
    std::vector<std::pair<std::string, torch::Tensor>> tensors; // parameters and buffers, by name
};

// Copies every parameter and buffer of model (call on the thread that trains it).
std::shared_ptr<const WeightSnapshot> snapshot_weights(Model &model, std::shared_ptr<Tokenizer> tokenizer, int64_t step);

struct SampleJob {
    std::string prompt;
    int64_t max_tokens = 200;
    double temperature = 0.8;
    int64_t top_k = 40;
};

// `cdrmix inspect --specialisation` on the dashboard's model copy.
struct SpecialisationJob {
    Config data;           // the data source to make (a fresh one each job: the same sample every time)
    bool train_split = false;
    int64_t batches = 8, batch_size = 8, seq_len = 128;
    int64_t top = 8;       // tokens listed per expert
};

// One job of each kind may wait at a time; the inspection runs first (one
// forward pass), then the specialisation, then the sample.
class SampleWorker {
public:
    SampleWorker();
    ~SampleWorker(); // lets a running sample finish, then joins
    SampleWorker(const SampleWorker &) = delete;
    SampleWorker &operator=(const SampleWorker &) = delete;

    // Starts generating from these weights (ignored while a sample is asked for or runs).
    void start(std::shared_ptr<const WeightSnapshot> weights, SampleJob job);
    // Routes `text` through these weights (route_text; ignored while an inspection is asked for or runs).
    void inspect(std::shared_ptr<const WeightSnapshot> weights, std::string text);
    // An inspection is coming once weights are available: busy from now on, with this status.
    void set_inspect_waiting(std::string status);
    // Counts which tokens each expert receives over the job's sample (ignored while one is asked for or runs).
    void specialise(std::shared_ptr<const WeightSnapshot> weights, SpecialisationJob job);
    void set_specialise_waiting(std::string status);
    void set_specialise_status(std::string status); // e.g. why a job could not be made
    void set_status(std::string status);
    // A job is coming once weights are available: busy from now on, with this status.
    void set_waiting(std::string status);

    struct View {
        std::string text, status;
        bool busy = false;
        Json routing;                // the last inspection (to_json(TextRouting)); null before the first
        std::string inspect_status;  // "routing of step N", "waiting ...", an error
        bool inspect_busy = false;
        // The last specialisation: {"split", "tokens", "step", "layers": ExpertSpecialisation::to_json}; null before the first.
        Json specialisation;
        std::string specialise_status;
        bool specialise_busy = false;
        int64_t revision = 0; // grows with every change, so the window knows to redraw
    };
    View view() const;

private:
    using Weights = std::shared_ptr<const WeightSnapshot>;
    void loop();
    // The model copy, rebuilt when the spec changes, holding these weights.
    Model &load(const WeightSnapshot &weights);
    void run(const WeightSnapshot &weights, const SampleJob &job);
    void run_inspection(const WeightSnapshot &weights, const std::string &text);
    void run_specialisation(const WeightSnapshot &weights, const SpecialisationJob &job);

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool quit_ = false;
    std::optional<std::pair<Weights, SampleJob>> job_;
    std::optional<std::pair<Weights, std::string>> inspect_job_;
    std::optional<std::pair<Weights, SpecialisationJob>> specialise_job_;
    View view_;
    std::shared_ptr<Model> model_; // the sampler's own copy, rebuilt when the spec changes
    std::string model_key_;
    std::thread thread_;
};

} // namespace cdrmix
