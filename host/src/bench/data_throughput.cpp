#include "bench/data_throughput.hpp"

#include <chrono>

namespace cdrmix {

DataThroughput measure_data_throughput(DataSource &data, Split split, int64_t batch, int64_t seq_len, double seconds) {
    using Clock = std::chrono::steady_clock;
    data.next_batch(split, batch, seq_len);
    DataThroughput r;
    // Counted from the batches: a bucketed chat source's rows can be shorter than seq_len.
    int64_t targets = 0;
    const auto start = Clock::now();
    while ((r.seconds = std::chrono::duration<double>(Clock::now() - start).count()) < seconds) {
        const at::Tensor b = data.next_batch(split, batch, seq_len);
        targets += b.size(0) * (b.size(1) - 1);
        ++r.batches;
    }
    r.tokens_per_s = r.seconds > 0 ? double(targets) / r.seconds : 0.0;
    return r;
}

} // namespace cdrmix
