// Axis ticks and value ranges for line plots, declared once: the dashboard's
// window and `cdrmix plot`'s files place ticks and pad ranges alike.
#pragma once

#include <vector>

namespace cdrmix::ui {

// "Nice" ticks (1, 2 or 5 times a power of ten) between lo and hi, at most about max_ticks.
std::vector<double> linear_ticks(double lo, double hi, int max_ticks);

// Ticks in log10 space: whole decades; 2x and 5x within a few decades; every
// integer multiple within about one (a loss between 1.3 and 4.4, say).
std::vector<double> log_ticks(double lo, double hi);

// Significant digits for linear tick labels, enough that neighbouring ticks
// read differently (0.00298 vs 0.003) and whole numbers keep their digits: 3 to 8.
int tick_digits(const std::vector<double> &ticks, double lo, double hi);

struct Range {
    double lo, hi;
};

// The y range to draw for data spanning [lo, hi]: 5% padding on each side, and
// a unit-wide range around a flat line.
Range padded_range(double lo, double hi);

} // namespace cdrmix::ui
