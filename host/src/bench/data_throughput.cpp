#include "bench/data_throughput.hpp"

#include <chrono>

namespace cdrmix {

DataThroughput measure_data_throughput(DataSource &data, Split split, int64_t batch, int64_t seq_len, double seconds) {
    using Clock = std::chrono::steady_clock;
    data.next_batch(split, batch, seq_len);
    DataThroughput r;
    const auto start = Clock::now();
    while ((r.seconds = std::chrono::duration<double>(Clock::now() - start).count()) < seconds) {
        data.next_batch(split, batch, seq_len);
        ++r.batches;
    }
    r.tokens_per_s = r.seconds > 0 ? double(r.batches * batch * seq_len) / r.seconds : 0.0;
    return r;
}

} // namespace cdrmix
