// Data parallelism for a whole model: its dense parameters averaged over every
// rank, and its experts, when they are split over ranks (expert_parallel.hpp),
// summed over the ranks that hold the same share and divided by the world
// size (each share's gradient then is the same mean over all ranks' tokens
// that one process would compute). Used by the trainer and cdrmix.dist.
//
// Threads: the training thread; every rank calls every method in the same order.
#pragma once

#include "dist/expert_parallel.hpp"
#include "dist/gradient_sync.hpp"

#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

class ModelSync {
public:
    // experts: the model's expert groups, or null when every rank holds every expert.
    ModelSync(ProcessGroup &world, const torch::nn::Module &model, ExpertParallel *experts);

    // As GradientSync::set_enabled, for both kinds of parameters.
    void set_enabled(bool enabled);
    // Seconds the last reducing backward waited on communication.
    double last_wait_s() const;
    // Rank 0's dense parameters and buffers on every rank; each share's experts from its first replica.
    void broadcast();
    // Throws naming the first tensor that differs between ranks that should hold the same.
    void check_equal(const std::string &what);
    // The trainable parameters reduced over every rank, and this rank's experts (empty without expert parallelism).
    const std::vector<torch::Tensor> &dense_trainable() const { return dense_.trainable; }
    const std::vector<torch::Tensor> &held_trainable() const { return held_.trainable; }
    // The L2 norm of the whole model's gradient (every expert once, wherever
    // it is held); with max_norm > 0 clips to it (as clip_grad_norm). After backward.
    double clip_grad_norm(double max_norm);

private:
    struct Part {
        ProcessGroup *group = nullptr;
        std::vector<torch::Tensor> tensors; // parameters and buffers
        std::vector<std::string> names;
        std::vector<torch::Tensor> trainable;
        std::unique_ptr<GradientSync> sync;
    };
    ExpertParallel *experts_;
    Part dense_, held_; // held_.group is null without expert parallelism
};

} // namespace cdrmix
