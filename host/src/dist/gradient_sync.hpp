// Data-parallel gradient averaging, in the design of PyTorch DDP's Reducer.
//
// Parameters are grouped into buckets of about bucket_bytes, in reverse order
// of registration (roughly the order backward produces their gradients). A
// hook on each parameter copies its gradient into its bucket as backward makes
// it; a bucket whose gradients are all in starts its all-reduce at once, so
// communication overlaps the rest of the backward pass. Buckets start strictly
// in order, so every rank issues the same collectives in the same order
// whatever its own graph looked like.
//
// When backward ends (an autograd final callback), buckets still open hold
// parameters this rank did not use (an expert that got no token): their
// slots get the accumulated gradient or zeros and the buckets start; one
// small all-reduce more says which parameters no rank used, and those keep
// no gradient, as they would in a single process. Every gradient is then the
// mean over ranks. The gradient of a reducing backward includes what earlier
// non-reducing backwards accumulated (gradient accumulation: reduce once per
// optimiser step, on the last micro-batch).
//
// Threads: backward may run hooks on autograd's device threads; the state is
// guarded. One backward at a time per GradientSync.
#pragma once

#include "dist/process_group.hpp"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace cdrmix {

class GradientSync {
public:
    // params: the trainable parameters, the same list (order, shapes) on every
    // rank. The summed gradients are divided by divide_by (0: the group's size).
    GradientSync(ProcessGroup &group, std::vector<torch::Tensor> params, double divide_by = 0,
                 int64_t bucket_bytes = 25 << 20);
    ~GradientSync(); // removes the hooks
    GradientSync(const GradientSync &) = delete;
    GradientSync &operator=(const GradientSync &) = delete;

    // Whether the following backward passes reduce (default true). Off for the
    // non-final micro-batches of an accumulation window: gradients then just accumulate.
    void set_enabled(bool enabled);
    // `other` (over another group) reduces in every backward this one does,
    // even one in which none of its parameters got a gradient on this rank
    // (another rank's may have), and finishes right after this one, so every
    // rank issues the two groups' collectives in the same order. Both must
    // live as long as each other; set_enabled applies to each separately.
    void lead(GradientSync &other);
    // Seconds the last reducing backward waited on communication after its own
    // work was done (what the overlap did not hide).
    double last_wait_s() const;

private:
    struct State;
    std::shared_ptr<State> state_; // shared with the hooks; holds the parameters
    std::vector<unsigned> hooks_;
};


// Rank src's parameter (and buffer) values on every rank, one broadcast per dtype.
void broadcast_tensors(ProcessGroup &group, const std::vector<torch::Tensor> &tensors, int src = 0);
// Throws naming the first tensor whose bytes differ between ranks (by a hash of each).
void check_tensors_equal(ProcessGroup &group, const std::vector<torch::Tensor> &tensors,
                         const std::vector<std::string> &names, const std::string &what);

} // namespace cdrmix
