// ExpertGroup: expert parallelism, as an MoE block sees it.
//
// With `expert_parallel: P` in the model spec and a multi-process run, every
// MoE layer's experts are split over P ranks (an expert group): member m of the
// group holds the m-th contiguous share of the experts, E/P of them. Tokens
// travel to the member that holds their expert and come back through
// exchange(), an all-to-all that is differentiable, so backward sends the
// gradients back the same way. The host makes the groups (consecutive ranks)
// and hands the block its group in BlockContext::expert_group; in a single
// process, or with P = 1, there is none and the block holds every expert.
//
// Contract for a block that uses it:
//   - Build every expert (so the random initialisation is the single
//     process's), then keep member m's share and call hold() once with a
//     module holding exactly those experts, registered in the order a single
//     process registers them. The host then reduces their gradients over the
//     ranks that hold the same share (not over every rank), broadcasts and
//     checks them within that set, and writes checkpoints in the single-process
//     layout (a checkpoint loads at any P, and in one process).
//   - Every member calls exchange() the same number of times in the same order
//     in every forward (it is a collective), also when it sends or receives no
//     rows, and keeps each exchange's result on the path to the loss, so the
//     backward exchanges happen on every member too.
//
// Threads: the thread that runs forward and backward. The group outlives the
// blocks built with it. Failures (a member gone, the timeout) throw cdrmix::Error.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace cdrmix {

class ExpertGroup {
public:
    virtual ~ExpertGroup() = default;

    // This process's member index (0..size()-1) and the number of members.
    virtual int64_t rank() const = 0;
    virtual int64_t size() const = 0;

    // rows [N, ...]: the first counts[0] rows go to member 0, the next
    // counts[1] to member 1, and so on (sum(counts) = N). Returns the rows the
    // members sent here, member 0's first, and sets received[m] to how many
    // came from member m. Differentiable in rows. Any dtype; on any device the
    // backend's collectives take (Gloo: CPU; other devices are copied through it).
    virtual torch::Tensor exchange(const torch::Tensor &rows, const std::vector<int64_t> &counts,
                                   std::vector<int64_t> &received) = 0;

    // Declares `experts` (its parameters and buffers) as this rank's share of
    // one layer's experts. Call once per layer, in layer order, after the
    // module is registered in the block.
    virtual void hold(const torch::nn::Module &experts) = 0;
};

} // namespace cdrmix
