// save_checkpoint with files of the caller's beside the standard ones (the
// spilled expert moments of expert-at-a-time training, expert_rotation.hpp).
// Declared apart from checkpoint.hpp, which most of the host includes.
#pragma once

#include "model/model.hpp"

#include <cdrmix/tokenizer.hpp>

#include <torch/optim/optimizer.h>

#include <functional>
#include <string>

namespace cdrmix {

// As save_checkpoint (checkpoint.hpp); `write_more(dir)` writes its files into
// the checkpoint's temporary folder before the manifest, so they are listed in
// it, synced and renamed into place with the rest (a failure leaves no folder).
std::string save_checkpoint_with(const std::string &root, int64_t step, Model &model,
                                 torch::optim::Optimizer &optimizer, const Tokenizer &tokenizer,
                                 const Json &trainer_state, const Json &run_config,
                                 const std::function<void(const std::string &dir)> &write_more);

} // namespace cdrmix
