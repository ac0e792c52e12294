// The stock trainer: AdamW (weight decay on matrices only), warm-up + cosine
// schedule, gradient clipping with the norm reported, periodic eval on the
// held-out split, checkpoints, and one metrics record per step.
#pragma once

#include "metrics/metrics.hpp"
#include "model/model.hpp"
#include "train/run_control.hpp"
#include "train/schedule.hpp"

#include <cdrmix/data_source.hpp>

#include <torch/optim/adamw.h>

#include <functional>
#include <memory>
#include <string>

namespace cdrmix {

struct TrainConfig {
    int64_t steps = 1000;
    int64_t batch_size = 16;
    int64_t seq_len = 128;
    LrSchedule schedule;
    double weight_decay = 0.1;
    double beta1 = 0.9, beta2 = 0.99, eps = 1e-8;
    double grad_clip = 1.0; // 0: off
    int64_t eval_every = 100; // 0: only at the end
    int64_t eval_batches = 8;
    int64_t log_every = 10;
    int64_t checkpoint_every = 0; // 0: only at the end
    uint64_t seed = 1337;

    static TrainConfig from_config(const Config &c);
    Json to_json() const;
};

// AdamW with two parameter groups: matrices (>= 2-D weights) decay, vectors do not.
std::unique_ptr<torch::optim::AdamW> make_adamw(Model &model, double lr, double weight_decay, double beta1,
                                                double beta2, double eps);

struct TrainCallbacks {
    // Each returns false to stop training after the current step.
    std::function<bool(const Json &)> on_step, on_eval, on_checkpoint;
};

class Trainer {
public:
    // checkpoint_root may be empty (no checkpoints).
    Trainer(std::shared_ptr<Model> model, std::shared_ptr<DataSource> data, TrainConfig config, MetricsBus &bus,
            std::string checkpoint_root);

    // Runs to config.steps (or until a callback says stop); returns the "end" record.
    Json run(const TrainCallbacks &callbacks = {});
    // Mean token loss over eval_batches of the val split (always the same batches).
    double evaluate();
    std::string checkpoint();
    void set_checkpoint_root(std::string root) { checkpoint_root_ = std::move(root); }
    // Polled between steps; may be null. Owned by the caller and must outlive run().
    void set_control(RunControl *control) { control_ = control; }

    const TrainConfig &config() const { return config_; }
    int64_t step() const { return step_; }

private:
    Json step_record(double loss, double aux, double grad_norm, double lr, double step_time,
                     const std::vector<RouterStats> &stats);

    std::shared_ptr<Model> model_;
    std::shared_ptr<DataSource> data_;
    TrainConfig config_;
    MetricsBus &bus_;
    std::string checkpoint_root_;
    std::unique_ptr<torch::optim::AdamW> optimizer_;
    int64_t step_ = 0;
    double elapsed_ = 0;
    int64_t tokens_ = 0;
    double last_val_loss_ = -1;
    RunControl *control_ = nullptr;
};

} // namespace cdrmix
