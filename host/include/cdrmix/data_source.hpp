// Data source contract: a stream of token batches [B,T+1] (inputs are [:, :T],
// targets [:, 1:]) with a train/val split, rank-aware sharding, and a position
// that checkpoints save so a resumed run reads on where it stopped.
#pragma once

#include <cdrmix/config.hpp>
#include <cdrmix/tokenizer.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace cdrmix {

enum class Split { Train, Val };

class DataSource {
public:
    virtual ~DataSource() = default;
    // Next batch of the split: int64 [batch, seq_len + 1].
    virtual at::Tensor next_batch(Split split, int64_t batch, int64_t seq_len) = 0;
    virtual std::shared_ptr<Tokenizer> tokenizer() const = 0;
    virtual int64_t num_tokens(Split split) const = 0;
    // Restart the val stream from its beginning, so every eval sees the same batches.
    virtual void reset(Split split) = 0;
    // Opaque, JSON-serialisable read position (saved in checkpoints).
    virtual Json position() const = 0;
    virtual void restore(const Json &position) = 0;
    virtual std::string describe() const = 0;
};

} // namespace cdrmix
