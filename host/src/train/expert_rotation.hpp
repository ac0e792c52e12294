// Expert-at-a-time training (TardBot's sequential expert training, as a
// trainer mode: train.expert_at_a_time). In every MoE layer one routed expert
// trains while the others are frozen; the embedding, mixers, norms, routers,
// shared experts and head train as usual. Tokens are still routed to every
// expert (the frozen ones run forward and pass gradients to their inputs), so
// the model computes what it always does; what is saved is the gradients and
// AdamW moments of the E - 1 frozen experts of each layer.
//
// The active expert of a layer with E experts at (0-based) step s is
// (s / switch_every) mod E. A frozen expert has requires_grad off (no gradient
// is allocated for it) and no optimiser state: when an expert stops training,
// its moments and step counts go to a file of their own in a scratch folder
// and are dropped from the optimiser; when it trains again they are read
// back, bit for bit (an expert never trained before starts from zero
// moments). A checkpoint holds the frozen experts' files beside optimizer.pt,
// which then holds the active experts' state (write_spilled, restore).
//
// Experts are found by their parameter names, blocks.L.ffn.experts.E.*.
#pragma once

#include "model/model.hpp"

#include <torch/optim/optimizer.h>

#include <string>
#include <utility>
#include <vector>

namespace cdrmix {

// The routed experts of one MoE layer: each expert's parameters by name.
struct MoeLayerExperts {
    int64_t layer = 0; // the model's layer index
    std::vector<std::vector<std::pair<std::string, torch::Tensor>>> experts;
};

// Every MoE layer's routed experts, in layer order (empty for a model without MoE layers).
std::vector<MoeLayerExperts> find_routed_experts(Model &model);

// The file a frozen expert's moments are kept in, in the scratch folder and in checkpoints.
std::string expert_moments_file(int64_t layer, int64_t expert);

// A checkpoint written by expert-at-a-time training resumed without it: reads
// every expert_moments file of checkpoint_dir into the optimiser, so every
// expert continues with its own moments.
void load_all_expert_moments(Model &model, torch::optim::Optimizer &optimizer, const std::string &checkpoint_dir);

class ExpertRotation {
public:
    // Freezes every routed expert but those active at step 0. The optimiser
    // must hold every parameter (made before the freezing) and no state yet.
    // Throws cdrmix::Error naming train.expert_at_a_time when the model has no MoE layer.
    ExpertRotation(Model &model, int64_t switch_every);
    // Removes the scratch folder and makes every expert trainable again (the
    // model may go on training in a loop written by hand).
    ~ExpertRotation();
    ExpertRotation(const ExpertRotation &) = delete;
    ExpertRotation &operator=(const ExpertRotation &) = delete;

    const std::vector<MoeLayerExperts> &layers() const { return layers_; }
    int64_t switch_every() const { return switch_every_; }
    // The expert of layers()[i] that trains at step `step`.
    int64_t active_at(size_t i, int64_t step) const;
    // The expert of layers()[i] that trains now.
    int64_t active(size_t i) const { return active_[i]; }
    // The scratch folder of the frozen experts' files ("" until the first switch).
    const std::string &spill_dir() const { return spill_dir_; }

    // Makes the experts of `step` the trained ones: an outgoing expert's
    // moments are written to its file (temp then rename; a failed write
    // throws) and dropped, its gradient freed, requires_grad turned off; an
    // incoming one's moments are read back. The scratch folder is made at the
    // first switch, under spill_root (the trainer's checkpoint folder) or,
    // when that is empty, the system's temporary folder.
    void advance(int64_t step, torch::optim::Optimizer &optimizer, const std::string &spill_root);
    // Into a checkpoint's temporary folder: the files of every frozen expert
    // (hard links to the scratch files, which are replaced, never rewritten, or copies).
    void write_spilled(const std::string &dir) const;
    // After the optimiser's state was loaded from checkpoint_dir: the experts
    // of `step` train and a frozen expert's moments come from its file in the
    // checkpoint. A checkpoint written without expert-at-a-time (or with another
    // switch_every) works too: what its optimizer.pt holds for a now frozen
    // expert is spilled, and an active expert's file is read in. With an empty
    // spill_root the scratch folder goes beside the checkpoint.
    void restore(const std::string &checkpoint_dir, int64_t step, torch::optim::Optimizer &optimizer,
                 const std::string &spill_root);

private:
    void ensure_spill_dir(const std::string &spill_root);
    // Writes the expert's moments to its scratch file and drops them from the optimiser.
    void spill(size_t i, int64_t expert, torch::optim::Optimizer &optimizer);
    void set_trainable(size_t i, int64_t expert, bool on);

    std::vector<MoeLayerExperts> layers_;
    int64_t switch_every_;
    std::vector<int64_t> active_;
    std::string spill_dir_;
};

} // namespace cdrmix
