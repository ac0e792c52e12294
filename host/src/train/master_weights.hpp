// bf16 model weights with float32 master copies (train.weights_dtype = "bfloat16",
// Oxidizr's --dtype). The model's parameters are held in bf16, so its forward and
// backward run in bf16 (half the weight and activation memory); the optimiser
// steps float32 masters of the trainable ones, because bf16's 8-bit mantissa
// drops an update smaller than about 1/256 of its weight. Each step:
// widen_gradients() adds the weights' bf16 gradients into float32 gradients of
// the masters after each micro-batch (clipping and AdamW see float32), the optimiser steps the masters,
// and round_into_weights() writes them back rounded to nearest. Buffers keep
// their dtype: they are statistics (aux_free's bias), not weights.
#pragma once

#include "model/model.hpp"
#include "train/safetensors.hpp"

#include <string>
#include <vector>

namespace cdrmix {

class MasterWeights {
public:
    // Makes float32 masters of the model's trainable parameters from their
    // present values (exactly), then converts every floating-point parameter
    // to bf16. Throws naming a parameter that is not float32.
    explicit MasterWeights(Model &model);

    // The masters under their parameters' names, in the model's order: what the optimiser is built over.
    const NamedTensors &named() const { return masters_; }
    std::vector<torch::Tensor> tensors() const;
    // Adds the bf16 weights' gradients, widened, into the masters' (undefined
    // stays undefined) and releases the bf16 ones. Called after each
    // micro-batch's backward, so accumulation sums in float32, not in bf16.
    void widen_gradients();
    // The masters rounded into the bf16 weights; the masters' gradients are
    // released, so float32 gradients live only from widen_gradients() to here.
    void round_into_weights();
    // After some of the model's parameters were replaced (Model::swap_router):
    // those whose names start with one of `replaced` get masters of their new
    // bf16 values (a new router may reuse its predecessor's names), the others
    // keep their masters.
    void rebind(Model &model, const std::vector<std::string> &replaced);
    // Loads the masters from a checkpoint folder (load_float32_weights) and rounds them into the weights.
    void load(const std::string &checkpoint_dir);

private:
    NamedTensors masters_, weights_; // same names, same order
};

// Whether a checkpoint folder holds float32 masters (written with bf16 weights).
bool has_master_weights(const std::string &checkpoint_dir);
// Copies the float32 values of `targets` (by name) from a checkpoint folder:
// its masters when it has them, else model.safetensors (a float32 checkpoint's
// weights are their own masters). Names and shapes must match.
void load_float32_weights(const NamedTensors &targets, const std::string &checkpoint_dir);

} // namespace cdrmix
