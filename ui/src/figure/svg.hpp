// A figure as SVG: plain text a reader or a test can check. Each plot area is a
// <rect class="plot-area"> carrying its data range (data-x-range, data-y-range,
// data-log-y), each curve a <polyline class="curve|raw"> (evaluations also a <g class="dots">)
// with data-label, and each legend entry a <text class="legend">.
#pragma once

#include "figure/figure.hpp"

#include <string>

namespace cdrmix::ui {

std::string figure_svg(const Figure &figure);

} // namespace cdrmix::ui
