// Thinning for drawing only: every point stays in memory, but a curve of 100k
// points is drawn through at most four points per pixel column (the first,
// lowest, highest and last of the column, in data order), so spikes survive
// and the line looks exactly as it would if every point were drawn.
#pragma once

#include <cstddef>
#include <vector>

namespace cdrmix::ui {

struct Point {
    double x, y;
};

// xs must be ascending. Keeps the points with x in [x_lo, x_hi] plus the
// nearest point outside on each side (so the line reaches the plot's edges),
// thinned to `columns` equal-width columns. Non-finite y values are skipped.
std::vector<Point> thin_minmax(const double *xs, const double *ys, size_t n, double x_lo, double x_hi, int columns);

} // namespace cdrmix::ui
