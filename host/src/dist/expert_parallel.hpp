// Expert parallelism, the host's side of cdrmix/expert_group.hpp.
//
// The world's ranks form expert groups of P consecutive ranks ([0,P), [P,2P),
// ...): tokens travel within one. The ranks at the same place m of every
// expert group hold the same experts and form share m's replica group
// (m, m+P, m+2P, ...). Expert gradients are summed within a replica group,
// dense ones over the world (dist/model_sync.hpp); checkpoints are written in
// the single-process layout (layout() below, train/expert_state.hpp).
//
// Threads: the thread that trains. Every method that moves data is a
// collective of the group it names.
#pragma once

#include "dist/process_group.hpp"

#include <cdrmix/expert_group.hpp>

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace cdrmix {

class ExpertParallel final : public ExpertGroup {
public:
    // Collective over the world: every rank joins its expert group and its
    // replica group. Throws cdrmix::Error unless size divides the world size.
    ExpertParallel(ProcessGroup &world, int64_t size);

    int64_t rank() const override { return experts_->rank(); }
    int64_t size() const override { return experts_->world_size(); }
    torch::Tensor exchange(const torch::Tensor &rows, const std::vector<int64_t> &counts,
                           std::vector<int64_t> &received) override;
    void hold(const torch::nn::Module &experts) override;

    ProcessGroup &world() { return world_; }
    ProcessGroup &experts() { return *experts_; }
    ProcessGroup &replicas() { return *replicas_; }
    // Seconds spent in the exchanges' all-to-alls (forward and backward) since the last call.
    double take_exchange_seconds();
    // Whether t is a parameter or buffer of this rank's experts.
    bool holds(const torch::Tensor &t) const { return held_.count(t.unsafeGetTensorImpl()) > 0; }

    // One tensor of the single-process model, in that model's order
    // (parameters, then buffers, each as named_parameters() lists them).
    struct Entry {
        std::string name;
        std::vector<int64_t> shape;
        c10::ScalarType dtype = c10::ScalarType::Float;
        bool parameter = true;
        int64_t member = -1;  // the expert-group member that holds it; -1: every rank (dense)
        torch::Tensor local;  // this rank's tensor; undefined when another member holds it
    };
    // `root`'s whole layout, computed once (a collective of the expert group:
    // the members tell each other the names and shapes they hold).
    const std::vector<Entry> &layout(const torch::nn::Module &root);

private:
    friend struct ExchangeOp;
    // Rows to and from every member, timed: the all-to-all both passes use.
    torch::Tensor move_rows(const torch::Tensor &rows, const std::vector<int64_t> &send,
                            const std::vector<int64_t> &recv);

    ProcessGroup &world_;
    double exchange_s_ = 0;
    std::unique_ptr<ProcessGroup> experts_, replicas_;
    std::vector<std::vector<torch::Tensor>> held_by_call_; // hold()'s parameters and buffers, per call
    std::unordered_set<const void *> held_;
    std::vector<Entry> layout_;
};

} // namespace cdrmix
