#include "figure/raster.hpp"

#include "figure/text.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cdrmix::ui {

namespace {

constexpr Rgb kWhite{255, 255, 255}, kText{40, 42, 46}, kGrid{228, 230, 234}, kFrame{154, 158, 166};

// The pixel indices [lo, hi) whose centres a span [a, b] (grown by `grow`) may touch, within [0, limit).
std::pair<int, int> pixel_span(double a, double b, double grow, int limit) {
    const int lo = std::max(0, static_cast<int>(std::floor(std::min(a, b) - grow)));
    const int hi = std::min(limit, static_cast<int>(std::ceil(std::max(a, b) + grow)) + 1);
    return {lo, std::max(lo, hi)};
}

double clamp01(double v) { return std::clamp(v, 0.0, 1.0); }

} // namespace

Canvas::Canvas(int width, int height, Rgb bg)
    : width_(width), height_(height), rgb_(static_cast<size_t>(width) * static_cast<size_t>(height) * 3) {
    if (width <= 0 || height <= 0) throw std::invalid_argument("canvas size must be positive");
    for (size_t i = 0; i < rgb_.size(); i += 3) rgb_[i] = bg.r, rgb_[i + 1] = bg.g, rgb_[i + 2] = bg.b;
}

Rgb Canvas::at(int x, int y) const {
    const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3;
    return {rgb_[i], rgb_[i + 1], rgb_[i + 2]};
}

void Canvas::blend(int x, int y, Rgb c, double coverage) {
    if (!(coverage > 0)) return;
    const double a = std::min(1.0, coverage);
    uint8_t *p = &rgb_[(static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3];
    auto mix = [a](uint8_t dst, uint8_t src) { return static_cast<uint8_t>(std::lround(dst + (src - dst) * a)); };
    p[0] = mix(p[0], c.r), p[1] = mix(p[1], c.g), p[2] = mix(p[2], c.b);
}

// Box coverage: the share of each pixel the rectangle covers.
void Canvas::fill_rect(const Rect &r, Rgb c, double alpha, const Rect &clip) {
    const Rect b{std::max(r.x0, clip.x0), std::max(r.y0, clip.y0), std::min(r.x1, clip.x1), std::min(r.y1, clip.y1)};
    if (!(b.x1 > b.x0 && b.y1 > b.y0)) return;
    const auto [xa, xb] = pixel_span(b.x0, b.x1, 0, width_);
    const auto [ya, yb] = pixel_span(b.y0, b.y1, 0, height_);
    for (int y = ya; y < yb; ++y) {
        const double cy = clamp01(std::min<double>(y + 1, b.y1) - std::max<double>(y, b.y0));
        for (int x = xa; x < xb; ++x) blend(x, y, c, alpha * cy * clamp01(std::min<double>(x + 1, b.x1) - std::max<double>(x, b.x0)));
    }
}

// Coverage falls off linearly over one pixel at the edge of a stroke `width` wide around the segment.
void Canvas::line(double x0, double y0, double x1, double y1, double width, Rgb c, double alpha, const Rect &clip) {
    const double half = width / 2, dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    auto [xa, xb] = pixel_span(x0, x1, half + 1, width_);
    auto [ya, yb] = pixel_span(y0, y1, half + 1, height_);
    xa = std::max(xa, static_cast<int>(std::floor(clip.x0))), xb = std::min(xb, static_cast<int>(std::ceil(clip.x1)));
    ya = std::max(ya, static_cast<int>(std::floor(clip.y0))), yb = std::min(yb, static_cast<int>(std::ceil(clip.y1)));
    for (int y = ya; y < yb; ++y)
        for (int x = xa; x < xb; ++x) {
            const double px = x + 0.5, py = y + 0.5;
            const double t = len2 > 0 ? std::clamp(((px - x0) * dx + (py - y0) * dy) / len2, 0.0, 1.0) : 0.0;
            const double d = std::hypot(px - (x0 + t * dx), py - (y0 + t * dy));
            blend(x, y, c, alpha * clamp01(half + 0.5 - d));
        }
}

void Canvas::disc(double cx, double cy, double radius, Rgb c, const Rect &clip) {
    line(cx, cy, cx, cy, radius * 2, c, 1.0, clip);
}

void Canvas::text(double x, double y_top, const std::string &s, Rgb c) {
    const Rect all{0, 0, static_cast<double>(width_), static_cast<double>(height_)};
    for (const Quad &q : text_quads(x, y_top, s)) fill_rect({q.x0, q.y0, q.x1, q.y1}, c, 1.0, all);
}

namespace {

// A curve with more points than pixel columns, drawn as the dashboard draws it:
// per column one bar from its lowest to its highest point, stretched to meet the
// previous column's last point. Overlapping segments would pile up a faint
// curve's transparency into a solid band.
void draw_envelope(Canvas &cv, const Panel &p, const Curve &c, double alpha) {
    size_t i = 0;
    double prev_last = p.to_py(c.points.front().y), prev_column = std::floor(p.to_px(c.points.front().x)) - 1;
    while (i < c.points.size()) {
        const double column = std::floor(p.to_px(c.points[i].x));
        double lo = prev_last, hi = prev_last;
        for (; i < c.points.size() && std::floor(p.to_px(c.points[i].x)) == column; ++i) {
            const double y = p.to_py(c.points[i].y);
            lo = std::min(lo, y), hi = std::max(hi, y);
        }
        prev_last = p.to_py(c.points[i - 1].y);
        // A column no point fell in (the data's columns and the pixels' need not align) joins the next bar.
        cv.fill_rect({prev_column + 1, lo - 0.75, column + 1, hi + 0.75}, c.colour, alpha, p.plot);
        prev_column = column;
    }
}

void draw_panel(Canvas &cv, const Panel &p) {
    const Rect &a = p.plot, all{0, 0, static_cast<double>(cv.width()), static_cast<double>(cv.height())};
    cv.text(p.title_at().x, p.title_at().y, p.title, kText);
    if (!p.has_data()) {
        cv.text(a.x0 + 8, a.y0 + 8, p.log_y ? "no positive values for a log scale" : "no data", kText);
    } else {
        for (double t : p.y_ticks) {
            const double y = std::round(p.to_py(t)) + 0.5; // grid lines on pixel centres stay crisp
            cv.line(a.x0, y, a.x1, y, 1, kGrid, 1, a);
            const std::string label = p.y_tick_label(t);
            cv.text(a.x0 - 6 - text_width(label), y - kTextHeight / 2, label, kText);
        }
        for (double t : p.x_ticks) {
            const double x = std::round(p.to_px(t)) + 0.5;
            cv.line(x, a.y0, x, a.y1, 1, kGrid, 1, a);
            const std::string label = p.x_tick_label(t);
            cv.text(x - text_width(label) / 2, a.y1 + 6, label, kText);
        }
        cv.text(a.x1 - text_width(p.x_label), a.y1 + 6 + kLineHeight, p.x_label, kText);
        for (const auto &c : p.curves) {
            const bool faint = c.style == CurveStyle::faint;
            const double alpha = faint ? 0.25 : 1.0;
            if (c.points.size() > static_cast<size_t>(a.x1 - a.x0)) {
                draw_envelope(cv, p, c, alpha);
            } else {
                for (size_t i = 1; i < c.points.size(); ++i)
                    cv.line(p.to_px(c.points[i - 1].x), p.to_py(c.points[i - 1].y), p.to_px(c.points[i].x),
                            p.to_py(c.points[i].y), faint ? 1.0 : 1.5, c.colour, alpha, a);
            }
            if (c.dotted(a.x1 - a.x0) || c.points.size() == 1)
                for (const auto &pt : c.points) cv.disc(p.to_px(pt.x), p.to_py(pt.y), 3, c.colour, a);
        }
        size_t k = 0;
        for (const auto &c : p.curves) {
            if (c.label.empty()) continue;
            const Point at = p.legend_at(k++);
            cv.fill_rect({at.x, at.y, at.x + 12, at.y + kTextHeight}, c.colour, 1, all);
            cv.text(at.x + 18, at.y, c.label, kText);
        }
    }
    // The frame, on pixel centres.
    const double x0 = std::floor(a.x0) + 0.5, y0 = std::floor(a.y0) + 0.5, x1 = std::floor(a.x1) + 0.5,
                 y1 = std::floor(a.y1) + 0.5;
    cv.line(x0, y0, x1, y0, 1, kFrame, 1, all);
    cv.line(x0, y1, x1, y1, 1, kFrame, 1, all);
    cv.line(x0, y0, x0, y1, 1, kFrame, 1, all);
    cv.line(x1, y0, x1, y1, 1, kFrame, 1, all);
}

} // namespace

Canvas render_figure(const Figure &f) {
    Canvas cv(f.width, f.height, kWhite);
    for (const auto &p : f.panels) draw_panel(cv, p);
    return cv;
}

std::string encode_png(const Canvas &cv) {
    // libpng's simplified API: no setjmp in this code, errors come back in image.message.
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    image.width = static_cast<png_uint_32>(cv.width());
    image.height = static_cast<png_uint_32>(cv.height());
    image.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    const png_int_32 stride = cv.width() * 3;
    if (!png_image_write_to_memory(&image, nullptr, &size, 0, cv.rgb().data(), stride, nullptr))
        throw std::runtime_error(std::string("PNG encoding failed: ") + image.message);
    std::string bytes(size, '\0');
    if (!png_image_write_to_memory(&image, bytes.data(), &size, 0, cv.rgb().data(), stride, nullptr))
        throw std::runtime_error(std::string("PNG encoding failed: ") + image.message);
    bytes.resize(size);
    return bytes;
}

} // namespace cdrmix::ui
