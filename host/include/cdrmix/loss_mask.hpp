// Optional second face of a DataSource whose batches carry a loss mask (the
// `chat` source: loss on assistant tokens only). The trainer, the eval and
// `cdrmix eval` ask for it with dynamic_cast after every next_batch; a source
// without it trains on every target, as before.
//
// Header-only and separate from data_source.hpp on purpose (as
// data_mixture.hpp): the DataSource contract, and so the plugin ABI, is
// unchanged, and existing sources and hosts that do not know this interface
// work as they did. The class has no out-of-line members, so no symbol of
// libcdrmix is needed to implement it.
//
// Threads and ownership: as DataSource; the returned tensor is a new value the
// caller owns.
#pragma once

#include <cdrmix/data_source.hpp>

#include <ATen/core/Tensor.h>

namespace cdrmix {

class LossMaskSource {
public:
    virtual ~LossMaskSource() = default;
    // The mask of the batch the last next_batch() returned, over its targets:
    // float32 [batch, seq_len], 1 where target batch[:, t + 1] has loss, 0
    // where it has none. Undefined before the first next_batch().
    virtual at::Tensor last_mask() const = 0;
};

// The mask of `data`'s last batch, or an undefined tensor when the source has none.
inline at::Tensor last_loss_mask(const DataSource &data) {
    const auto *masked = dynamic_cast<const LossMaskSource *>(&data);
    return masked ? masked->last_mask() : at::Tensor();
}

} // namespace cdrmix
