// Checkpoints of a model whose experts are split over ranks
// (dist/expert_parallel.hpp), in the single-process layout: they resume at
// any expert_parallel and load in one process (eval, generate, describe).
//
// Before a save, gather_whole_model() brings to rank 0 the experts that the
// other members of its expert group hold, with their AdamW state (point to
// point; only that group moves tensors), and orders everything as one process
// would. A resume reads the whole optimiser state on every rank and keeps its
// own share: a transient peak of the whole state, as a ZeRO-1 resume has.
//
// Threads: the training thread; collectives, every rank calls them in the same order.
#pragma once

#include "dist/expert_parallel.hpp"
#include "train/checkpoint.hpp"

#include <torch/optim/adamw.h>

#include <memory>
#include <string>

namespace cdrmix {

struct WholeModel {
    NamedTensors weights; // parameters, then buffers, in the single-process order
    std::unique_ptr<torch::optim::AdamW> optimizer; // over the weights' parameters, with every one's state
};

// On world rank 0 the whole model; empty elsewhere. `optimizer` holds this rank's parameters' state.
WholeModel gather_whole_model(ExpertParallel &experts, const torch::nn::Module &model, torch::optim::AdamW &optimizer);

// optimizer.pt of a checkpoint (single-process layout) into this rank's
// optimizer: the state of the parameters this rank holds.
void load_whole_optimizer_state(ExpertParallel &experts, const torch::nn::Module &model,
                                torch::optim::AdamW &optimizer, const std::string &checkpoint_dir);

} // namespace cdrmix
