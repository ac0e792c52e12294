// The training loss of one batch under a loss mask (cdrmix/loss_mask.hpp):
// the mean cross-entropy over the targets the mask keeps, plus the model's
// auxiliary losses. Used by the trainer and by evaluate_split, so a masked
// source's train and val losses mean the same thing.
#pragma once

#include "model/model.hpp"

#include <cstdint>

namespace cdrmix {

// mask: undefined (every target has loss: Model::loss) or float [B, T] of 0/1
// for batch [B, T+1]. With no target kept, ce is 0 (with a gradient of zeros),
// not 0/0.
LossOutput masked_loss(Model &model, const torch::Tensor &batch, const torch::Tensor &mask,
                       bool record_routing = false);

// The targets that have loss: the mask's ones, or every target without a mask.
int64_t loss_token_count(const torch::Tensor &batch, const torch::Tensor &mask);

} // namespace cdrmix
