#include "train/evaluate.hpp"

#include "train/masked_loss.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/loss_mask.hpp>

#include <torch/torch.h>

#include <cmath>

namespace cdrmix {

EvalResult evaluate_split(Model &model, DataSource &data, Split split, int64_t batch_size, int64_t seq_len,
                          int64_t batches) {
    if (batches <= 0 || batch_size <= 0 || seq_len <= 0)
        throw Error("evaluate: batches, batch_size and seq_len must be positive");
    torch::NoGradGuard no_grad;
    const bool was_training = model.is_training();
    model.eval();
    data.reset(split);
    EvalResult r;
    double sum = 0;
    for (int64_t i = 0; i < batches; ++i) {
        const torch::Tensor batch = data.next_batch(split, batch_size, seq_len);
        const torch::Tensor mask = last_loss_mask(data);
        const int64_t n = loss_token_count(batch, mask);
        // The loss is a mean over the batch's targets with loss; weighting by
        // their count keeps the result a per-token mean when batches differ
        // (a masked source's batches keep different numbers of targets).
        sum += masked_loss(model, batch, mask).ce.item<double>() * double(n);
        r.tokens += n;
        ++r.batches;
    }
    model.train(was_training);
    r.loss = r.tokens > 0 ? sum / double(r.tokens) : 0.0;
    r.perplexity = std::exp(r.loss);
    return r;
}

int64_t batches_to_cover(int64_t tokens, int64_t batch_size, int64_t seq_len) {
    const int64_t per_batch = std::max<int64_t>(1, batch_size * seq_len);
    return std::max<int64_t>(1, (tokens + per_batch - 1) / per_batch);
}

} // namespace cdrmix
