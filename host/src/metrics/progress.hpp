// The terminal sink. On a TTY: one progress bar line (step, loss, tokens/s,
// ETA) redrawn in place, with eval results printed above it. Headless (or not
// a TTY): one JSON object per log interval on stdout, for CI and scripts.
#pragma once

#include "metrics/metrics.hpp"

#include <chrono>

namespace cdrmix {

class ProgressSink : public MetricsSink {
public:
    ProgressSink(bool tty, int64_t log_every);
    void write(const Json &record) override;
    void finish() override;
    void set_log_every(int64_t n) { log_every_ = n > 0 ? n : 1; }

private:
    void draw(const Json &step);
    void clear_line();

    bool tty_;
    int64_t log_every_;
    bool bar_visible_ = false;
    std::chrono::steady_clock::time_point last_draw_{};
};

// "1h02m", "3m05s", "12s"
std::string format_duration(double seconds);

} // namespace cdrmix
