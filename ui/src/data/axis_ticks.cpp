#include "data/axis_ticks.hpp"

#include <algorithm>
#include <cmath>

namespace cdrmix::ui {

std::vector<double> linear_ticks(double lo, double hi, int max_ticks) {
    std::vector<double> ticks;
    const double span = hi - lo;
    if (!(span > 0) || !std::isfinite(span) || max_ticks < 1) return ticks;
    const double raw = span / max_ticks, mag = std::pow(10.0, std::floor(std::log10(raw))), r = raw / mag;
    const double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
    return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
    std::vector<double> ticks;
    if (!(hi > lo) || !std::isfinite(hi - lo)) return ticks;
    const double span = hi - lo;
    for (double d = std::floor(lo); d <= std::ceil(hi); d += 1) {
        for (int m = 1; m <= 9; ++m) {
            const bool shown = m == 1 || (span < 2.5 && (m == 2 || m == 5)) || span < 1.2;
            const double t = d + std::log10(static_cast<double>(m));
            if (shown && t >= lo && t <= hi) ticks.push_back(t);
        }
    }
    return ticks;
}

int tick_digits(const std::vector<double> &ticks, double lo, double hi) {
    if (ticks.size() < 2) return 3;
    const double step = ticks[1] - ticks[0], top = std::max(std::abs(lo), std::abs(hi));
    // Whole numbers keep all their digits (4100, not 4.1e+03).
    const int whole = top >= 1 ? static_cast<int>(std::floor(std::log10(top))) + 1 : 1;
    return std::clamp(std::max(static_cast<int>(std::ceil(std::log10(top / step))) + 1, whole), 3, 8);
}

Range padded_range(double lo, double hi) {
    if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) lo -= 0.5, hi += 0.5;
    const double pad = (hi - lo) * 0.05;
    return {lo - pad, hi + pad};
}

} // namespace cdrmix::ui
