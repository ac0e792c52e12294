// Held-out loss: token-weighted mean cross-entropy over a number of batches of
// one split, and its perplexity. Used by the trainer's periodic eval, by
// `cdrmix eval` and by model:evaluate in Lua.
#pragma once

#include "model/model.hpp"

#include <cdrmix/data_source.hpp>

namespace cdrmix {

struct EvalResult {
    double loss = 0;       // mean cross-entropy per predicted token (nats)
    double perplexity = 0; // exp(loss)
    int64_t tokens = 0;    // targets counted: those with loss under the data's mask (cdrmix/loss_mask.hpp), else all
    int64_t batches = 0;
};

// Restarts the split's stream first, so repeated calls see the same batches.
// Runs in eval mode without gradients and restores the model's mode after.
EvalResult evaluate_split(Model &model, DataSource &data, Split split, int64_t batch_size, int64_t seq_len,
                          int64_t batches);

// Enough batches of batch_size x seq_len to read `tokens` tokens once (at least 1).
int64_t batches_to_cover(int64_t tokens, int64_t batch_size, int64_t seq_len);

} // namespace cdrmix
