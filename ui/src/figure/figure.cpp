#include "figure/figure.hpp"

#include "data/axis_ticks.hpp"
#include "data/smoothing.hpp"
#include "figure/text.hpp"
#include "metrics/record_fields.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace cdrmix::ui {

namespace {

namespace fs = cdrmix::fields::step;
namespace fm = cdrmix::fields::moe;

enum class Source { loss, run, layer };

// What each metric draws, with the dashboard's titles. `smoothed`: per-step
// noise the EMA helps read (not schedules, counts or evaluations).
struct MetricDef {
    const char *name, *title;
    Source source;
    Series RunData::*run_series;
    Series LayerStats::*layer_series;
    bool smoothed, log, markers;
};

const std::vector<MetricDef> &metric_defs() {
    static const std::vector<MetricDef> defs = {
        {fs::loss, "Loss (train: EMA-smoothed over faint raw; val: dots)", Source::loss, nullptr, nullptr, true, false, false},
        {cdrmix::fields::eval::val_loss, "Validation loss", Source::run, &RunData::val_loss, nullptr, false, false, true},
        {fs::aux_loss, "Auxiliary loss (routers' losses)", Source::run, &RunData::aux_loss, nullptr, true, false, false},
        {fs::lr, "Learning rate", Source::run, &RunData::lr, nullptr, false, false, false},
        {fs::grad_norm, "Gradient norm (before clipping; log)", Source::run, &RunData::grad_norm, nullptr, true, true, false},
        {fs::tokens_per_s, "Throughput (tokens/s)", Source::run, &RunData::tokens_per_s, nullptr, true, false, false},
        {fs::step_time_s, "Step time (s)", Source::run, &RunData::step_time, nullptr, true, false, false},
        {fs::rss_mb, "Memory in use (process RSS, MB)", Source::run, &RunData::rss_mb, nullptr, false, false, false},
        {fs::device_mem_mb, "GPU memory in use (MB)", Source::run, &RunData::device_mem_mb, nullptr, false, false, false},
        {fs::comm_s, "Waiting on other ranks (s per step, slowest rank)", Source::run, &RunData::comm_s, nullptr, false, false, false},
        {fm::load_cv, "Load CV (std / mean of tokens per expert), per MoE layer", Source::layer, nullptr, &LayerStats::load_cv, true, false, false},
        {fm::token_entropy, "Per-token routing entropy (/ ln E; 0 = confident)", Source::layer, nullptr, &LayerStats::token_entropy, true, false, false},
        {fm::load_entropy, "Load entropy (/ ln E; 1 = balanced)", Source::layer, nullptr, &LayerStats::load_entropy, true, false, false},
        {fm::dropped_tokens, "Dropped tokens per step", Source::layer, nullptr, &LayerStats::dropped_tokens, false, false, false},
        {fm::dead_experts, "Dead experts", Source::layer, nullptr, &LayerStats::dead_experts, false, false, false},
    };
    return defs;
}

const MetricDef &metric_def(const std::string &name) {
    for (const auto &d : metric_defs())
        if (name == d.name) return d;
    throw std::invalid_argument("unknown metric '" + name + "'");
}

// Layout, in pixels.
constexpr double kLeft = 72, kTop = 32, kBottom = 40, kRightPad = 14, kSwatch = 18, kMinPlotWidth = 80;

// A series to draw before thinning: its x (step or time), its y, how it looks.
struct Pending {
    std::string label;
    Rgb colour;
    CurveStyle style;
    const std::vector<double> *x;
    std::vector<double> y;
};

void add_series(std::vector<Pending> &out, const Series &s, const std::string &label, Rgb colour, bool smoothed,
                bool markers, const FigureOptions &o) {
    if (s.empty()) return;
    const std::vector<double> *x = o.by_time ? &s.time : &s.step;
    if (markers) {
        out.push_back({label, colour, CurveStyle::markers, x, s.value});
    } else if (smoothed && o.smoothing > 0) {
        out.push_back({"", colour, CurveStyle::faint, x, s.value});
        out.push_back({label, colour, CurveStyle::line, x, ema_smooth(s.value, o.smoothing)});
    } else {
        out.push_back({label, colour, CurveStyle::line, x, s.value});
    }
}

std::vector<Pending> series_of(const MetricDef &d, const std::vector<RunData> &runs, const FigureOptions &o) {
    std::vector<Pending> out;
    for (size_t r = 0; r < runs.size(); ++r) {
        const RunData &run = runs[r];
        const Rgb colour = palette_colour(r);
        switch (d.source) {
        case Source::loss:
            add_series(out, run.loss, run.name + " train", colour, true, false, o);
            add_series(out, run.val_loss, run.name + " val", val_colour(colour), false, true, o);
            break;
        case Source::run:
            add_series(out, run.*d.run_series, run.name, colour, d.smoothed, d.markers, o);
            break;
        case Source::layer:
            for (size_t l = 0; l < run.layers.size(); ++l)
                add_series(out, run.layers[l].*d.layer_series, run.name + " L" + std::to_string(run.layers[l].layer),
                           layer_colour(r, runs.size(), l, run.layers.size()), d.smoothed, false, o);
            break;
        }
    }
    return out;
}

std::vector<Point> to_log10(std::vector<Point> pts) {
    std::vector<Point> out;
    out.reserve(pts.size());
    for (const auto &p : pts)
        if (p.y > 0) out.push_back({p.x, std::log10(p.y)});
    return out;
}

std::string format_number(const char *format, int digits, double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, format, digits, v);
    return buf;
}

// Thins every series to the plot's pixel columns and sets the panel's ranges and ticks.
void fill_panel(Panel &p, const std::vector<Pending> &series) {
    double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
    for (const auto &s : series) x_lo = std::min(x_lo, s.x->front()), x_hi = std::max(x_hi, s.x->back());
    if (!(x_hi >= x_lo)) return;
    if (x_hi == x_lo) x_hi = x_lo + 1;
    const int columns = std::max(1, static_cast<int>(p.plot.x1 - p.plot.x0));
    double y_lo = std::numeric_limits<double>::infinity(), y_hi = -y_lo;
    for (const auto &s : series) {
        std::vector<Point> pts = thin_minmax(s.x->data(), s.y.data(), s.y.size(), x_lo, x_hi, columns);
        if (p.log_y) pts = to_log10(std::move(pts));
        for (const auto &pt : pts) y_lo = std::min(y_lo, pt.y), y_hi = std::max(y_hi, pt.y);
        p.curves.push_back({s.label, s.colour, s.style, std::move(pts)});
    }
    if (!(y_hi >= y_lo)) { // nothing finite (or positive, on a log panel) to draw
        p.curves.clear();
        return;
    }
    const Range y = padded_range(y_lo, y_hi);
    p.x_lo = x_lo, p.x_hi = x_hi, p.y_lo = y.lo, p.y_hi = y.hi;
    p.x_ticks = linear_ticks(x_lo, x_hi, std::max(2, columns / 90));
    const int y_tick_count = std::max(2, static_cast<int>((p.plot.y1 - p.plot.y0) / 50));
    p.y_ticks = p.log_y ? log_ticks(y.lo, y.hi) : linear_ticks(y.lo, y.hi, y_tick_count);
    p.y_digits = p.log_y ? 3 : tick_digits(p.y_ticks, y.lo, y.hi);
}

} // namespace

const std::vector<std::string> &figure_metrics() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const auto &d : metric_defs()) n.push_back(d.name);
        return n;
    }();
    return names;
}

bool Panel::has_data() const { return !curves.empty(); }

std::string Panel::x_tick_label(double t) const { return format_number("%.*g", 6, t); }

std::string Panel::y_tick_label(double t) const {
    return log_y ? format_number("%.*g", 3, std::pow(10.0, t)) : format_number("%.*g", y_digits, t);
}

Figure build_figure(const std::vector<RunData> &runs, const FigureOptions &o) {
    if (o.width < 200 || o.panel_height < 120)
        throw std::invalid_argument("a figure needs at least 200 x 120 pixels per panel");
    // The pixels are held in memory (3 bytes each): keep a figure within reason.
    constexpr double kMaxPixels = 64e6;
    if (static_cast<double>(o.width) * o.panel_height * static_cast<double>(o.metrics.size()) > kMaxPixels)
        throw std::invalid_argument("a figure of " + std::to_string(o.width) + " x " +
                                    std::to_string(o.panel_height * static_cast<int>(o.metrics.size())) +
                                    " pixels is more than 64 megapixels; lower --width or --panel-height");
    Figure fig;
    fig.width = o.width;
    fig.height = o.panel_height * static_cast<int>(o.metrics.size());
    for (size_t i = 0; i < o.metrics.size(); ++i) {
        const MetricDef &d = metric_def(o.metrics[i]);
        const std::vector<Pending> series = series_of(d, runs, o);
        Panel p;
        p.metric = d.name;
        p.title = d.title;
        p.x_label = o.by_time ? "wall time (s)" : "step";
        p.log_y = o.log_y || d.log;
        const double top = static_cast<double>(o.panel_height) * static_cast<double>(i);
        p.frame = {0, top, static_cast<double>(o.width), top + o.panel_height};
        // The legend sits right of the plot area, as wide as its longest label (within reason).
        double legend = 0;
        for (const auto &s : series)
            if (!s.label.empty()) legend = std::max(legend, text_width(s.label));
        const double legend_width = std::min(legend + kSwatch + 10, o.width - kLeft - kRightPad - kMinPlotWidth);
        p.plot = {kLeft, top + kTop, o.width - kRightPad - legend_width, top + o.panel_height - kBottom};
        fill_panel(p, series);
        fig.panels.push_back(std::move(p));
    }
    return fig;
}

} // namespace cdrmix::ui
