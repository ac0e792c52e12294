// `cdrmix plot`'s figures: the SVG's curves map back to the runs' data through
// the plot area's declared ranges, with the dashboard's smoothing and log
// scale; labels are escaped; PNGs decode and show the curves; long runs are
// thinned to the plot's pixel columns with their spikes kept.
#include <data/smoothing.hpp>
#include <figure/figure.hpp>
#include <figure/raster.hpp>
#include <figure/svg.hpp>

#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <regex>
#include <sstream>

using namespace cdrmix::ui;

namespace {

RunData make_run(const std::string &name, int steps, double scale) {
    RunData run;
    run.name = name;
    for (int s = 1; s <= steps; ++s) {
        const double loss = scale * (4.0 / s + 0.1 * (s % 3));
        ingest(run, {{"event", "step"}, {"step", s}, {"time", 100.0 + 0.5 * s}, {"loss", loss}, {"lr", 1e-3},
                     {"moe", {{{"layer", 1}, {"load_cv", 0.2 * scale + 0.01 * s}, {"tokens_per_expert", {4, 4}}}}}});
        if (s % 5 == 0) ingest(run, {{"event", "eval"}, {"step", s}, {"time", 100.0 + 0.5 * s}, {"val_loss", loss + 0.2}});
    }
    return run;
}

std::string attr(const std::string &element, const std::string &name) {
    std::smatch m;
    if (!std::regex_search(element, m, std::regex(" " + name + "=\"([^\"]*)\""))) return "";
    return m[1];
}

std::vector<std::string> elements(const std::string &svg, const std::string &tag) {
    std::vector<std::string> out;
    const std::regex re("<" + tag + " [^>]*>");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it) out.push_back(it->str());
    return out;
}

std::vector<double> numbers(const std::string &s) {
    std::vector<double> v;
    std::istringstream in(s);
    for (double x; in >> x;) v.push_back(x);
    return v;
}

// A panel's plot area as the SVG declares it: pixel rectangle and data ranges.
struct Area {
    double x, y, w, h, x_lo, x_hi, y_lo, y_hi;
    bool log_y;
    std::pair<double, double> data_of(double px, double py) const {
        const double dy = y_lo + (y + h - py) / h * (y_hi - y_lo);
        return {x_lo + (px - x) / w * (x_hi - x_lo), log_y ? std::pow(10.0, dy) : dy};
    }
};

Area area_of(const std::string &rect) {
    const auto xr = numbers(attr(rect, "data-x-range")), yr = numbers(attr(rect, "data-y-range"));
    EXPECT_EQ(xr.size(), 2u);
    EXPECT_EQ(yr.size(), 2u);
    return {std::stod(attr(rect, "x")), std::stod(attr(rect, "y")), std::stod(attr(rect, "width")),
            std::stod(attr(rect, "height")), xr.at(0), xr.at(1), yr.at(0), yr.at(1), attr(rect, "data-log-y") == "1"};
}

std::vector<std::pair<double, double>> polyline_points(const std::string &svg, const std::string &cls, const std::string &label) {
    for (const auto &p : elements(svg, "polyline")) {
        if (attr(p, "class") != cls || attr(p, "data-label") != label) continue;
        std::vector<std::pair<double, double>> pts;
        std::string s = attr(p, "points");
        std::replace(s.begin(), s.end(), ',', ' ');
        const auto v = numbers(s);
        for (size_t i = 0; i + 1 < v.size(); i += 2) pts.push_back({v[i], v[i + 1]});
        return pts;
    }
    ADD_FAILURE() << "no polyline " << cls << " '" << label << "'";
    return {};
}

// Checks that a polyline maps back to (step, value) pairs within SVG's 0.01 px rounding.
void expect_curve(const Area &a, const std::vector<std::pair<double, double>> &pts, const std::vector<double> &steps,
                  const std::vector<double> &values) {
    ASSERT_EQ(pts.size(), values.size());
    const double tol_x = 0.006 / a.w * (a.x_hi - a.x_lo) * 1.01, tol_y = 0.006 / a.h * (a.y_hi - a.y_lo) * 1.01;
    for (size_t i = 0; i < pts.size(); ++i) {
        const auto [x, y] = a.data_of(pts[i].first, pts[i].second);
        EXPECT_NEAR(x, steps[i], tol_x) << "point " << i;
        if (a.log_y) EXPECT_NEAR(std::log10(y), std::log10(values[i]), tol_y) << "point " << i;
        else EXPECT_NEAR(y, values[i], tol_y) << "point " << i;
    }
}

std::vector<std::string> legend(const std::string &svg) {
    std::vector<std::string> out;
    const std::regex re("<text class=\"legend\"[^>]*>([^<]*)</text>");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it) out.push_back((*it)[1]);
    return out;
}

} // namespace

TEST(PlotSvg, CurvesMapBackToTheRunsThroughThePlotArea) {
    const std::vector<RunData> runs = {make_run("alpha", 20, 1.0), make_run("beta", 12, 1.3)};
    FigureOptions o;
    o.metrics = {"loss", "load_cv"};
    o.smoothing = 0;
    const std::string svg = figure_svg(build_figure(runs, o));
    const auto areas = elements(svg, "rect class=\"plot-area\"");
    ASSERT_EQ(areas.size(), 2u);
    const Area loss = area_of(areas[0]), cv = area_of(areas[1]);
    EXPECT_DOUBLE_EQ(loss.x_lo, 1);
    EXPECT_DOUBLE_EQ(loss.x_hi, 20); // the longer run sets the x range
    for (const auto &run : runs) {
        expect_curve(loss, polyline_points(svg, "curve", run.name + " train"), run.loss.step, run.loss.value);
        expect_curve(cv, polyline_points(svg, "curve", run.name + " L1"), run.layers[0].load_cv.step,
                     run.layers[0].load_cv.value);
    }
    // Evaluations are dots, one per eval record.
    const std::regex dots("<g class=\"dots\" data-label=\"alpha val\"[^>]*>((<circle [^>]*>)*)</g>");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(svg, m, dots));
    EXPECT_EQ(elements(m[1].str(), "circle").size(), 4u);
    EXPECT_EQ(legend(svg), (std::vector<std::string>{"alpha train", "alpha val", "beta train", "beta val", "alpha L1", "beta L1"}));
    EXPECT_NE(svg.find(">step</text>"), std::string::npos); // x axis label
}

TEST(PlotSvg, SmoothingIsTheDashboardsEmaOverTheFaintRawCurve) {
    const std::vector<RunData> runs = {make_run("alpha", 30, 1.0)};
    FigureOptions o;
    o.smoothing = 0.8;
    const std::string svg = figure_svg(build_figure(runs, o));
    const Area a = area_of(elements(svg, "rect class=\"plot-area\"").at(0));
    expect_curve(a, polyline_points(svg, "curve", "alpha train"), runs[0].loss.step, ema_smooth(runs[0].loss.value, 0.8));
    expect_curve(a, polyline_points(svg, "raw", ""), runs[0].loss.step, runs[0].loss.value);
}

TEST(PlotSvg, LogScaleDropsValuesAtOrBelowZero) {
    RunData run;
    run.name = "r";
    const std::vector<double> values = {10, 0, 1, -1, 0.1};
    for (size_t i = 0; i < values.size(); ++i)
        ingest(run, {{"event", "step"}, {"step", i + 1}, {"time", 1.0}, {"lr", values[i]}});
    FigureOptions o;
    o.metrics = {"lr"};
    o.log_y = true;
    const std::string svg = figure_svg(build_figure({run}, o));
    const Area a = area_of(elements(svg, "rect class=\"plot-area\"").at(0));
    EXPECT_TRUE(a.log_y);
    expect_curve(a, polyline_points(svg, "curve", "r"), {1, 3, 5}, {10, 1, 0.1});
}

TEST(PlotSvg, LabelsFromFolderNamesAreEscaped) {
    RunData run = make_run("a<b&\"c\"\x01\xff", 3, 1.0);
    FigureOptions o;
    o.metrics = {"lr", "dead_experts"};
    const std::string svg = figure_svg(build_figure({run}, o));
    EXPECT_NE(svg.find(">a&lt;b&amp;&quot;c&quot;?\xEF\xBF\xBD</text>"), std::string::npos);
    EXPECT_EQ(svg.find('\xff'), std::string::npos);
    EXPECT_NE(svg.find(">no data</text>"), std::string::npos); // dead_experts: none recorded
}

TEST(PlotFigure, LongRunsAreThinnedToPixelColumnsKeepingSpikes) {
    RunData run;
    run.name = "long";
    for (int s = 1; s <= 100000; ++s)
        ingest(run, {{"event", "step"}, {"step", s}, {"time", 1.0}, {"loss", s == 54321 ? 50.0 : 2.0 + 1e-6 * s}});
    FigureOptions o;
    o.smoothing = 0;
    const Figure f = build_figure({run}, o);
    const Panel &p = f.panels.at(0);
    const auto &pts = p.curves.at(0).points;
    const int columns = static_cast<int>(p.plot.x1 - p.plot.x0);
    EXPECT_LE(pts.size(), static_cast<size_t>(4 * columns + 8));
    EXPECT_TRUE(std::any_of(pts.begin(), pts.end(), [](const Point &q) { return q.y == 50.0; }));
    EXPECT_GE(p.y_hi, 50.0);
}

TEST(PlotFigure, UnknownMetricAndTinySizesAreRefused) {
    FigureOptions o;
    o.metrics = {"val_los"};
    EXPECT_THROW(build_figure({}, o), std::invalid_argument);
    o.metrics = {"loss"};
    o.width = 50;
    EXPECT_THROW(build_figure({}, o), std::invalid_argument);
    o.width = 20000, o.panel_height = 20000; // 400 megapixels
    EXPECT_THROW(build_figure({}, o), std::invalid_argument);
}

TEST(PlotPng, DecodesAndDrawsTheCurvesInTheirColours) {
    const std::vector<RunData> runs = {make_run("alpha", 40, 1.0), make_run("beta", 40, 1.5)};
    FigureOptions o;
    o.metrics = {"loss", "load_cv"};
    const Figure f = build_figure(runs, o);
    const std::string png = encode_png(render_figure(f));

    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    ASSERT_TRUE(png_image_begin_read_from_memory(&image, png.data(), png.size())) << image.message;
    image.format = PNG_FORMAT_RGB;
    std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(image));
    ASSERT_TRUE(png_image_finish_read(&image, nullptr, rgb.data(), 0, nullptr)) << image.message;
    ASSERT_EQ(image.width, 800u);
    ASSERT_EQ(image.height, 600u);

    // Inside each plot area: pixels that are not background, and pixels of each solid curve's colour.
    for (const Panel &p : f.panels) {
        std::vector<Rgb> colours;
        for (const auto &c : p.curves)
            if (c.style == CurveStyle::line) colours.push_back(c.colour);
        ASSERT_EQ(colours.size(), 2u) << p.metric; // one per run
        size_t drawn = 0;
        std::vector<size_t> of_colour(colours.size());
        for (int y = static_cast<int>(p.plot.y0) + 2; y < static_cast<int>(p.plot.y1) - 1; ++y)
            for (int x = static_cast<int>(p.plot.x0) + 2; x < static_cast<int>(p.plot.x1) - 1; ++x) {
                const uint8_t *q = &rgb[(static_cast<size_t>(y) * image.width + static_cast<size_t>(x)) * 3];
                if (q[0] < 200 || q[1] < 200 || q[2] < 200) ++drawn;
                for (size_t k = 0; k < colours.size(); ++k)
                    if (q[0] == colours[k].r && q[1] == colours[k].g && q[2] == colours[k].b) ++of_colour[k];
            }
        EXPECT_GT(drawn, 300u) << p.metric;
        for (size_t k = 0; k < colours.size(); ++k) EXPECT_GT(of_colour[k], 20u) << p.metric << " curve " << k;
    }
}
