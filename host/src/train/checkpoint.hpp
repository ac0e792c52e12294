// Checkpoints: one folder per save, checkpoints/step-000600/, holding
//   model.safetensors   weights under RWKV-LM names
//   model.json          the resolved model spec
//   tokenizer.json      the exact vocabulary
//   trainer_state.json  step, schedule, data position, train config
//   optimizer.pt        AdamW moments (LibTorch archive)
// The folder is written under a temporary name and renamed into place, then
// the `latest` symlink is swapped atomically, so a crash never leaves a
// half-written checkpoint where a good one was.
#pragma once

#include "model/model.hpp"

#include <cdrmix/tokenizer.hpp>

#include <torch/optim/optimizer.h>

#include <string>

namespace cdrmix {

// Returns the path of the new checkpoint folder.
std::string save_checkpoint(const std::string &root, int64_t step, Model &model, torch::optim::Optimizer &optimizer,
                            const Tokenizer &tokenizer, const Json &trainer_state);

// Loads model.safetensors from a checkpoint folder into model (names and shapes must match).
void load_model_weights(Model &model, const std::string &checkpoint_dir);

} // namespace cdrmix
