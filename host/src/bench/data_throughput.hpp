// Tokens/s of a data source's batches alone (no model): what `cdrmix data bench`
// prints and what the data row of `cdrmix bench` sets against training.
#pragma once

#include <cdrmix/data_source.hpp>

#include <cstdint>

namespace cdrmix {

struct DataThroughput {
    int64_t batches = 0;
    double seconds = 0;
    double tokens_per_s = 0; // counting batch x seq_len tokens per batch, as training consumes them
};

// Reads one batch first (opening files, the first block), then batches of the
// split for `seconds`.
DataThroughput measure_data_throughput(DataSource &data, Split split, int64_t batch, int64_t seq_len, double seconds);

} // namespace cdrmix
