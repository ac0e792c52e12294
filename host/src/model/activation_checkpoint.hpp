// Activation checkpointing (train.checkpoint_activations): a checkpointed layer
// runs its forward pass without recording a graph, keeps only its inputs (the
// residual stream and RWKV-7's v_first) and runs the forward again, with
// gradients, when backward reaches it. Memory drops from the layer's whole
// activations to one [B,T,C] input per layer, for about one more forward pass.
//
// The recomputation sees what the first pass saw: the default CPU generator
// (and the model device's, for CUDA) is set back to its state at the first
// pass (dropout, router jitter draw the same numbers) and restored afterwards;
// buffers the layer changed in place during the first pass (aux_free's bias)
// hold their earlier values during the recomputation and their new ones after
// it; autocast is on again if it was. What the layer publishes in its
// ForwardContext (auxiliary losses, routing records, v_first) is published
// once, by the first pass: the losses and v_first become outputs of the
// checkpoint node, so their gradients reach the layer's parameters; the
// recomputation's own records are discarded.
//
// Stateful (streaming) calls are never checkpointed: their final state would
// have to become an output too, and generation runs without gradients anyway.
#pragma once

#include <cdrmix/block.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace cdrmix {

class Layer;

struct ActivationCheckpointing {
    enum class Mode { None, All, EveryK };
    Mode mode = Mode::None;
    int64_t every = 1; // EveryK: layers 0, k, 2k, ... are checkpointed

    // mode: "none" | "all" | "every_k"; throws cdrmix::Error naming `where` otherwise.
    static ActivationCheckpointing parse(const std::string &mode, int64_t every, const std::string &where);
    std::string name() const;
    bool applies(int64_t layer) const;
};

// layer->forward(x, nullptr, nullptr, ctx) as one autograd node that keeps only
// x and ctx.v_first (see above). Throws c10::Error when the layer's
// recomputation publishes other auxiliary losses than its first pass did.
torch::Tensor checkpointed_layer_forward(const std::shared_ptr<Layer> &layer, const torch::Tensor &x,
                                         ForwardContext &ctx);

} // namespace cdrmix
