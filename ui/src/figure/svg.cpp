#include "figure/svg.hpp"

#include "figure/text.hpp"

#include <cdrmix/utf8.hpp>

#include <cstdio>

namespace cdrmix::ui {

namespace {

// Labels come from folder names and files: escape what XML treats specially,
// and replace what XML 1.0 cannot hold (control characters, ill-formed UTF-8).
std::string escape(const std::string &s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_sequence_at(s, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD"; // U+FFFD
            ++i;
            continue;
        }
        const char c = s[i];
        if (n > 1) out.append(s, i, n);
        else if (c == '&') out += "&amp;";
        else if (c == '<') out += "&lt;";
        else if (c == '>') out += "&gt;";
        else if (c == '"') out += "&quot;";
        else if (c == '\'') out += "&apos;";
        else if (static_cast<unsigned char>(c) < 32 && c != '\t') out += '?';
        else out += c;
        i += n;
    }
    return out;
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}

// Full precision: the ranges let a reader map pixels back to data.
std::string exact(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

std::string hex(Rgb c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
    return buf;
}

// SVG text is placed by its baseline; the layout gives top-left corners.
std::string text(double x, double y_top, const std::string &cls, const std::string &s, const char *anchor = "start") {
    return "<text class=\"" + cls + "\" x=\"" + num(x) + "\" y=\"" + num(y_top + kTextHeight) + "\" text-anchor=\"" +
           anchor + "\">" + escape(s) + "</text>\n";
}

void panel_svg(std::string &out, const Panel &p, size_t index) {
    const Rect &a = p.plot;
    out += "<g class=\"panel\" data-metric=\"" + escape(p.metric) + "\">\n";
    out += text(p.title_at().x, p.title_at().y, "title", p.title);
    out += "<rect class=\"plot-area\" x=\"" + num(a.x0) + "\" y=\"" + num(a.y0) + "\" width=\"" + num(a.x1 - a.x0) +
           "\" height=\"" + num(a.y1 - a.y0) + "\" fill=\"#ffffff\" stroke=\"#9a9ea6\"";
    if (p.has_data())
        out += " data-x-range=\"" + exact(p.x_lo) + " " + exact(p.x_hi) + "\" data-y-range=\"" + exact(p.y_lo) + " " +
               exact(p.y_hi) + "\" data-log-y=\"" + (p.log_y ? "1" : "0") + "\"";
    out += "/>\n";
    if (!p.has_data()) {
        out += text(a.x0 + 8, a.y0 + 8, "no-data", p.log_y ? "no positive values for a log scale" : "no data");
        out += "</g>\n";
        return;
    }
    for (double t : p.y_ticks) {
        const double y = p.to_py(t);
        out += "<line class=\"grid\" x1=\"" + num(a.x0) + "\" y1=\"" + num(y) + "\" x2=\"" + num(a.x1) + "\" y2=\"" +
               num(y) + "\" stroke=\"#e4e6ea\"/>\n";
        out += text(a.x0 - 6, y - kTextHeight / 2, "tick", p.y_tick_label(t), "end");
    }
    for (double t : p.x_ticks) {
        const double x = p.to_px(t);
        out += "<line class=\"grid\" x1=\"" + num(x) + "\" y1=\"" + num(a.y0) + "\" x2=\"" + num(x) + "\" y2=\"" +
               num(a.y1) + "\" stroke=\"#e4e6ea\"/>\n";
        out += text(x, a.y1 + 6, "tick", p.x_tick_label(t), "middle");
    }
    out += text(a.x1, a.y1 + 6 + kLineHeight, "axis-label", p.x_label, "end");

    const std::string clip = "plot" + std::to_string(index);
    out += "<clipPath id=\"" + clip + "\"><rect x=\"" + num(a.x0) + "\" y=\"" + num(a.y0) + "\" width=\"" +
           num(a.x1 - a.x0) + "\" height=\"" + num(a.y1 - a.y0) + "\"/></clipPath>\n";
    out += "<g clip-path=\"url(#" + clip + ")\">\n";
    for (const auto &c : p.curves) {
        const std::string colour = hex(c.colour);
        const bool faint = c.style == CurveStyle::faint;
        out += std::string("<polyline class=\"") + (faint ? "raw" : "curve") + "\" data-label=\"" + escape(c.label) +
               "\" fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"" + (faint ? "1" : "1.5") + "\"" +
               (faint ? " stroke-opacity=\"0.25\"" : "") + " stroke-linejoin=\"round\" points=\"";
        for (size_t i = 0; i < c.points.size(); ++i)
            out += (i ? " " : "") + num(p.to_px(c.points[i].x)) + "," + num(p.to_py(c.points[i].y));
        out += "\"/>\n";
        if (!c.dotted(a.x1 - a.x0) && c.points.size() != 1) continue;
        out += "<g class=\"dots\" data-label=\"" + escape(c.label) + "\" fill=\"" + colour + "\">";
        for (const auto &pt : c.points)
            out += "<circle cx=\"" + num(p.to_px(pt.x)) + "\" cy=\"" + num(p.to_py(pt.y)) + "\" r=\"3\"/>";
        out += "</g>\n";
    }
    out += "</g>\n";

    size_t k = 0;
    for (const auto &c : p.curves) {
        if (c.label.empty()) continue;
        const Point at = p.legend_at(k++);
        out += "<rect class=\"swatch\" x=\"" + num(at.x) + "\" y=\"" + num(at.y) + "\" width=\"12\" height=\"" +
               num(kTextHeight) + "\" fill=\"" + hex(c.colour) + "\"/>\n";
        out += text(at.x + 18, at.y, "legend", c.label);
    }
    out += "</g>\n";
}

} // namespace

std::string figure_svg(const Figure &f) {
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                      std::to_string(f.width) + "\" height=\"" + std::to_string(f.height) + "\" viewBox=\"0 0 " +
                      std::to_string(f.width) + " " + std::to_string(f.height) +
                      "\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\" fill=\"#282a2e\">\n";
    out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
    for (size_t i = 0; i < f.panels.size(); ++i) panel_svg(out, f.panels[i], i);
    out += "</svg>\n";
    return out;
}

} // namespace cdrmix::ui
