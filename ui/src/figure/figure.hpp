// A figure for files (`cdrmix plot`): the dashboard's line plots of one or more
// runs, one panel per metric, laid out in pixels and independent of the output
// format (svg.hpp writes it as SVG, raster.hpp draws it for PNG). Curves are
// built with the dashboard's own smoothing (ema_smooth) and thinning
// (thin_minmax, to the plot's pixel columns).
#pragma once

#include "data/palette.hpp"
#include "data/run_data.hpp"
#include "data/thinning.hpp"

#include <string>
#include <vector>

namespace cdrmix::ui {

struct FigureOptions {
    std::vector<std::string> metrics = {"loss"}; // names from figure_metrics()
    double smoothing = 0.6;                       // the dashboard's default; 0 draws raw curves only
    bool log_y = false;                           // every panel (grad_norm is log always, as in the dashboard)
    bool by_time = false;                         // x: seconds since each run's first record, not step
    int width = 800, panel_height = 300;          // pixels
};

// The metrics a figure can show (their record field names), in the order of `cdrmix plot --help`.
const std::vector<std::string> &figure_metrics();

// line: solid; faint: the raw curve beneath a smoothed one; markers: solid with a
// dot per point while there is room for them (evaluations), as in the dashboard.
enum class CurveStyle { line, faint, markers };

struct Curve {
    std::string label; // "" for the faint raw curve beneath a smoothed one (not in the legend)
    Rgb colour;
    CurveStyle style;
    std::vector<Point> points; // data space; y is log10 of the value on a log panel
    bool dotted(double plot_width) const { return style == CurveStyle::markers && points.size() * 4 < plot_width; }
};

struct Rect {
    double x0, y0, x1, y1;
};

struct Panel {
    std::string metric, title, x_label;
    bool log_y = false;
    Rect frame{}; // the panel's share of the figure
    Rect plot{};  // the plot area inside it
    // The data range the plot area shows (y in log10 on a log panel); valid when has_data().
    double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
    std::vector<double> x_ticks, y_ticks; // in the same space as the range
    int y_digits = 3;                     // significant digits of linear y tick labels
    std::vector<Curve> curves;            // in drawing order
    bool has_data() const;
    double to_px(double x) const { return plot.x0 + (x - x_lo) / (x_hi - x_lo) * (plot.x1 - plot.x0); }
    double to_py(double y) const { return plot.y1 - (y - y_lo) / (y_hi - y_lo) * (plot.y1 - plot.y0); }
    std::string x_tick_label(double t) const;
    std::string y_tick_label(double t) const;
    // Where the title's and the k-th legend entry's text start (top-left), so
    // every output format places them alike.
    Point title_at() const { return {plot.x0, frame.y0 + 8}; }
    Point legend_at(size_t k) const { return {plot.x1 + 10, plot.y0 + 18.0 * static_cast<double>(k)}; }
};

struct Figure {
    int width = 0, height = 0;
    std::vector<Panel> panels;
};

// One panel per options.metrics entry, stacked. Runs are overlaid in the
// dashboard's colours (by their order). Throws std::invalid_argument for a
// metric not in figure_metrics(), a panel below 200 x 120 pixels or a figure over 64 megapixels.
Figure build_figure(const std::vector<RunData> &runs, const FigureOptions &options);

} // namespace cdrmix::ui
