#include "data/thinning.hpp"

#include <algorithm>
#include <cmath>

namespace cdrmix::ui {

std::vector<Point> thin_minmax(const double *xs, const double *ys, size_t n, double x_lo, double x_hi, int columns) {
    std::vector<Point> out;
    if (n == 0 || columns <= 0 || !(x_hi >= x_lo)) return out;
    size_t begin = static_cast<size_t>(std::lower_bound(xs, xs + n, x_lo) - xs);
    size_t end = static_cast<size_t>(std::upper_bound(xs, xs + n, x_hi) - xs);
    if (begin > 0) --begin;
    if (end < n) ++end;
    const double width = x_hi > x_lo ? (x_hi - x_lo) / columns : 1.0;
    auto column_of = [&](double x) {
        return static_cast<long>(std::clamp(std::floor((x - x_lo) / width), -1.0, static_cast<double>(columns)));
    };
    out.reserve(std::min<size_t>(end - begin, 4 * static_cast<size_t>(columns) + 8));

    // One pass: collect each column's first/min/max/last indices, flush when the column changes.
    size_t first = 0, lo = 0, hi = 0, last = 0;
    long current = 0;
    bool open = false;
    auto flush = [&] {
        size_t idx[4] = {first, lo, hi, last};
        std::sort(idx, idx + 4);
        for (int i = 0; i < 4; ++i)
            if (i == 0 || idx[i] != idx[i - 1]) out.push_back({xs[idx[i]], ys[idx[i]]});
    };
    for (size_t i = begin; i < end; ++i) {
        if (!std::isfinite(ys[i])) continue;
        const long c = column_of(xs[i]);
        if (open && c == current) {
            if (ys[i] < ys[lo]) lo = i;
            if (ys[i] > ys[hi]) hi = i;
            last = i;
            continue;
        }
        if (open) flush();
        first = lo = hi = last = i;
        current = c;
        open = true;
    }
    if (open) flush();
    return out;
}

} // namespace cdrmix::ui
