// ZeRO stage 1 (train.shard_optimizer): AdamW's moments split over the
// data-parallel ranks. Every parameter has one owner rank (whole parameters,
// dealt out largest first to the rank holding least, the same on every rank).
// A rank keeps moments only for the parameters it owns and updates only
// those, from the gradients every rank already holds averaged; then each
// parameter is broadcast from its owner. The arithmetic is AdamW's, so the
// parameters equal unsharded AdamW's bitwise, with about 1/world_size of the
// optimiser state on each rank.
//
// Checkpoints hold the whole state: before a save, consolidate() brings every
// parameter's state to rank 0 (point to point, from its owner), and release()
// drops it again after, so a checkpoint resumes at any world size, sharded or
// not. A resume loads the whole state on every rank and releases what the
// rank does not own (a transient peak of the unsharded state).
//
// With experts split over ranks (dist/expert_parallel.hpp) there are two
// parts: the dense parameters shared over every rank, and this rank's experts
// shared over their replica group; each part's owners are drawn within its
// group, and consolidate() brings each part's state to its group's rank 0.
//
// Threads: the trainer's thread only. Every rank calls every method, in the same order.
#pragma once

#include "dist/process_group.hpp"

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <vector>

namespace cdrmix {

class OptimizerShards {
public:
    // Parameters whose state is shared over one group: the same list on every rank of it.
    struct Part {
        ProcessGroup *group = nullptr;
        std::vector<torch::Tensor> params;
    };
    explicit OptimizerShards(std::vector<Part> parts);

    // The optimiser step of this rank's parameters, then every parameter from its owner.
    void step(torch::optim::Optimizer &optimizer);
    // Each group's rank 0 receives the state of every parameter it does not own; the other ranks send theirs.
    void consolidate(torch::optim::Optimizer &optimizer);
    // Forgets the state of the parameters this rank does not own.
    void release(torch::optim::Optimizer &optimizer);

private:
    struct Shared {
        ProcessGroup *group;
        std::vector<torch::Tensor> params;
        std::vector<int> owner;                         // by parameter: a rank of the group
        std::vector<std::vector<torch::Tensor>> owned;  // by rank
    };
    std::vector<Shared> parts_;
};

} // namespace cdrmix
