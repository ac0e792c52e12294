// Data source contract: a stream of token batches [B,T+1] (inputs are [:, :T],
// targets [:, 1:]) with a train/val split, rank-aware sharding, and a position
// that checkpoints save so a resumed run reads on where it stopped.
//
// Threads: a source is used from one thread at a time (the trainer's, or a
// script's); it may be handed from one thread to another. Ownership: the caller owns the source (from the registry's
// create_data_source); tensors and JSON it returns are new values the caller owns.
// Errors: cdrmix::Error, one line naming the source's config (the factory for
// bad configuration, next_batch for unreadable data or a split too small for
// the request, restore for a position of another source or of other data).
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
    // Next batch of the split: int64 [batch, seq_len + 1] on the CPU. Advances the position.
    virtual at::Tensor next_batch(Split split, int64_t batch, int64_t seq_len) = 0;
    // Shared with the source: it lives as long as either holds it. Never null.
    virtual std::shared_ptr<Tokenizer> tokenizer() const = 0;
    // Tokens in the split, or -1 when unknown without reading everything (streaming sources).
    virtual int64_t num_tokens(Split split) const = 0;
    // Restart the val stream from its beginning, so every eval sees the same batches.
    virtual void reset(Split split) = 0;
    // Opaque, JSON-serialisable read position (saved in checkpoints).
    virtual Json position() const = 0;
    // Continue from a position() of a source built from the same config and data;
    // throws on any other (the read position is then unspecified: restore again or reset).
    virtual void restore(const Json &position) = 0;
    // One line for logs and `cdrmix describe`.
    virtual std::string describe() const = 0;
};

} // namespace cdrmix
