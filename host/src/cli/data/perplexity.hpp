// Perplexity of a document under a checkpoint's model, for `cdrmix data filter --max-ppl`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace cdrmix {

struct LoadedCheckpoint;

class CheckpointPerplexity {
public:
    // dir: what `cdrmix eval` takes (a checkpoint, checkpoints/ or run folder).
    // seq_len: tokens per window; 0 takes the run's train seq_len (else 256).
    // Needs the model's plugins registered (Registry::global()).
    CheckpointPerplexity(const std::string &dir, int64_t seq_len);
    ~CheckpointPerplexity();
    // exp(mean cross-entropy) over the text's tokens after the first, read in
    // windows of seq_len + 1 tokens with stride seq_len (as the data sources cut
    // them), each window from a fresh state; NaN for fewer than 2 tokens.
    double operator()(const std::string &text) const;
    int64_t seq_len() const { return seq_len_; }
    const std::string &dir() const;

private:
    std::unique_ptr<LoadedCheckpoint> ckpt_;
    int64_t seq_len_;
};

} // namespace cdrmix
