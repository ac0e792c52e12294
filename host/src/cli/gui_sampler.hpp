// The dashboard's sampling panel: text generated from a copy of the trained
// weights on a thread of its own, so training never waits for it. The copy is
// taken by the training thread at a step boundary (snapshot_weights), when no
// optimiser step is half-done.
#pragma once

#include "model/model.hpp"

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

class SampleWorker {
public:
    SampleWorker();
    ~SampleWorker(); // lets a running sample finish, then joins
    SampleWorker(const SampleWorker &) = delete;
    SampleWorker &operator=(const SampleWorker &) = delete;

    // Starts generating from these weights (ignored while a job runs).
    void start(std::shared_ptr<const WeightSnapshot> weights, SampleJob job);
    void set_status(std::string status);
    // A job is coming once weights are available: busy from now on, with this status.
    void set_waiting(std::string status);

    struct View {
        std::string text, status;
        bool busy = false;
        int64_t revision = 0; // grows with every change, so the window knows to redraw
    };
    View view() const;

private:
    void loop();
    void run(const WeightSnapshot &weights, const SampleJob &job);

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool quit_ = false;
    std::optional<std::pair<std::shared_ptr<const WeightSnapshot>, SampleJob>> job_;
    View view_;
    std::shared_ptr<Model> model_; // the sampler's own copy, rebuilt when the spec changes
    std::string model_key_;
    std::thread thread_;
};

} // namespace cdrmix
