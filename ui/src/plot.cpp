#include "plot.hpp"

#include "data/axis_ticks.hpp"
#include "data/thinning.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <tuple>

namespace cdrmix::ui {

namespace {

constexpr float kLeftMargin = 56, kBottomMargin = 18;

ImU32 faded(ImU32 c, float alpha) {
    ImVec4 v = ImGui::ColorConvertU32ToFloat4(c);
    v.w *= alpha;
    return ImGui::ColorConvertFloat4ToU32(v);
}

void format_value(char *buf, size_t n, const char *fmt, double v) { std::snprintf(buf, n, fmt, v); }

size_t nearest_index(const std::vector<double> &xs, double x) {
    auto it = std::lower_bound(xs.begin(), xs.end(), x);
    if (it == xs.end()) return xs.size() - 1;
    if (it != xs.begin() && x - *(it - 1) < *it - x) --it;
    return static_cast<size_t>(it - xs.begin());
}

struct Stats {
    double last, lo, hi;
};

Stats stats_of(const std::vector<double> &v) {
    Stats s{v.back(), std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
    for (double y : v)
        if (std::isfinite(y)) s.lo = std::min(s.lo, y), s.hi = std::max(s.hi, y);
    return s;
}

void legend(const std::vector<PlotLine> &lines, const PlotStyle &style) {
    bool first = true;
    const float right = ImGui::GetCursorPosX() + ImGui::GetContentRegionAvail().x;
    for (const auto &l : lines) {
        if (!l.y || l.y->empty()) continue;
        // Compact legends run along one line and wrap when the next entry would not fit.
        if (!style.stats && !first) {
            ImGui::SameLine();
            if (ImGui::GetCursorPosX() + 18 + ImGui::CalcTextSize(l.label.c_str()).x > right) ImGui::NewLine();
        }
        first = false;
        ImGui::ColorButton(("##c" + l.label).c_str(), ImGui::ColorConvertU32ToFloat4(l.colour),
                           ImGuiColorEditFlags_NoTooltip | ImGuiColorEditFlags_NoBorder, ImVec2(10, 10));
        ImGui::SameLine(0, 4);
        if (!style.stats) {
            ImGui::TextUnformatted(l.label.c_str());
            continue;
        }
        const Stats s = stats_of(l.raw ? *l.raw : *l.y);
        char a[32], b[32], c[32];
        format_value(a, sizeof a, style.y_format, s.last);
        format_value(b, sizeof b, style.y_format, s.lo);
        format_value(c, sizeof c, style.y_format, s.hi);
        ImGui::Text("%s  last %s  min %s  max %s", l.label.c_str(), a, b, c);
    }
}

// A curve with more points than pixel columns, drawn as what a polyline through
// all of them would cover: per column, one bar from its lowest to its highest
// point, stretched to meet the previous column's last point. One quad per column
// instead of a zigzag of segments, which a software renderer (Xvfb) pays for.
void draw_envelope(ImDrawList *dl, const std::vector<ImVec2> &pts, ImU32 colour) {
    size_t i = 0;
    float prev_last = pts.front().y;
    while (i < pts.size()) {
        const float column = std::floor(pts[i].x);
        float lo = prev_last, hi = prev_last;
        for (; i < pts.size() && std::floor(pts[i].x) == column; ++i) lo = std::min(lo, pts[i].y), hi = std::max(hi, pts[i].y);
        prev_last = pts[i - 1].y;
        dl->AddRectFilled(ImVec2(column, lo - 0.5f), ImVec2(column + 1, hi + 0.5f), colour);
    }
}

// Thinned curves from recent frames, keyed by what determines them.
class ThinCache {
public:
    const std::vector<Point> &get(const std::vector<double> &x, const std::vector<double> &y, uint64_t revision,
                                  double x_lo, double x_hi, int columns) {
        const Key key{x.data(), y.data(), y.size(), revision, x_lo, x_hi, columns};
        const int frame = ImGui::GetFrameCount();
        if (frame != frame_) { // drop what the previous frame did not use
            for (auto it = entries_.begin(); it != entries_.end();) it = it->second.frame < frame_ ? entries_.erase(it) : std::next(it);
            frame_ = frame;
        }
        auto it = entries_.find(key);
        if (it == entries_.end())
            it = entries_.emplace(key, Entry{thin_minmax(x.data(), y.data(), y.size(), x_lo, x_hi, columns), frame}).first;
        it->second.frame = frame;
        return it->second.points;
    }

private:
    struct Key {
        const double *x, *y;
        size_t n;
        uint64_t revision;
        double x_lo, x_hi;
        int columns;
        bool operator<(const Key &o) const {
            return std::tie(x, y, n, revision, x_lo, x_hi, columns) < std::tie(o.x, o.y, o.n, o.revision, o.x_lo, o.x_hi, o.columns);
        }
    };
    struct Entry {
        std::vector<Point> points;
        int frame;
    };
    std::map<Key, Entry> entries_;
    int frame_ = -1;
};

ThinCache &thin_cache() {
    static ThinCache cache;
    return cache;
}

} // namespace

void line_plot(const char *title, const std::vector<PlotLine> &lines, const PlotStyle &style) {
    if (std::strncmp(title, "##", 2) != 0) ImGui::TextUnformatted(title);
    legend(lines, style);
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    const float width = std::max(80.0f, ImGui::GetContentRegionAvail().x);
    ImGui::InvisibleButton(title, ImVec2(width, style.height));
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList *dl = ImGui::GetWindowDrawList();
    const ImVec2 p0(origin.x + kLeftMargin, origin.y + 2), p1(origin.x + width - 4, origin.y + style.height - kBottomMargin);
    dl->AddRectFilled(p0, p1, IM_COL32(22, 24, 28, 255));
    const int columns = std::max(1, static_cast<int>(p1.x - p0.x));

    double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
    for (const auto &l : lines)
        if (l.x && !l.x->empty()) x_lo = std::min(x_lo, l.x->front()), x_hi = std::max(x_hi, l.x->back());
    if (!(x_hi >= x_lo)) {
        dl->AddText(ImVec2(p0.x + 8, p0.y + 8), IM_COL32(140, 140, 140, 255), "no data yet");
        return;
    }
    if (x_hi == x_lo) x_hi = x_lo + 1;

    // Thin every curve first; the y range comes from what will be drawn (raw included, so spikes stay in view).
    auto transform = [&](std::vector<Point> pts) {
        if (!style.log_y) return pts;
        std::vector<Point> out;
        out.reserve(pts.size());
        for (const auto &p : pts)
            if (p.y > 0) out.push_back({p.x, std::log10(p.y)});
        return out;
    };
    std::vector<std::vector<Point>> solid(lines.size()), faint(lines.size());
    double y_lo = std::numeric_limits<double>::infinity(), y_hi = -y_lo;
    for (size_t i = 0; i < lines.size(); ++i) {
        const auto &l = lines[i];
        if (!l.x || !l.y || l.y->empty()) continue;
        solid[i] = transform(thin_cache().get(*l.x, *l.y, l.revision, x_lo, x_hi, columns));
        if (l.raw) faint[i] = transform(thin_cache().get(*l.x, *l.raw, l.revision, x_lo, x_hi, columns));
        for (const auto *pts : {&solid[i], &faint[i]})
            for (const auto &p : *pts) y_lo = std::min(y_lo, p.y), y_hi = std::max(y_hi, p.y);
    }
    if (!(y_hi >= y_lo)) {
        dl->AddText(ImVec2(p0.x + 8, p0.y + 8), IM_COL32(140, 140, 140, 255),
                    style.log_y ? "no positive values for a log scale" : "no finite values");
        return;
    }
    const Range y_range = padded_range(y_lo, y_hi);
    y_lo = y_range.lo, y_hi = y_range.hi;

    auto to_screen = [&](double x, double y) {
        return ImVec2(p0.x + static_cast<float>((x - x_lo) / (x_hi - x_lo)) * (p1.x - p0.x),
                      p1.y - static_cast<float>((y - y_lo) / (y_hi - y_lo)) * (p1.y - p0.y));
    };

    // Grid and tick labels.
    const ImU32 grid = IM_COL32(60, 64, 72, 255), text = IM_COL32(170, 170, 170, 255);
    char buf[32];
    const std::vector<double> y_ticks = style.log_y ? log_ticks(y_lo, y_hi) : linear_ticks(y_lo, y_hi, 4);
    const int digits = style.log_y ? 3 : tick_digits(y_ticks, y_lo, y_hi);
    char y_format[8];
    std::snprintf(y_format, sizeof y_format, "%%.%dg", digits);
    for (double t : y_ticks) {
        const float y = to_screen(x_lo, t).y;
        dl->AddLine(ImVec2(p0.x, y), ImVec2(p1.x, y), grid);
        format_value(buf, sizeof buf, y_format, style.log_y ? std::pow(10.0, t) : t);
        const ImVec2 ts = ImGui::CalcTextSize(buf);
        dl->AddText(ImVec2(p0.x - ts.x - 4, y - ts.y / 2), text, buf);
    }
    const float x_label_left = p1.x - ImGui::CalcTextSize(style.x_label).x;
    for (double t : linear_ticks(x_lo, x_hi, std::max(2, columns / 90))) {
        const float x = to_screen(t, y_lo).x;
        dl->AddLine(ImVec2(x, p0.y), ImVec2(x, p1.y), grid);
        format_value(buf, sizeof buf, "%.6g", t);
        const ImVec2 ts = ImGui::CalcTextSize(buf);
        if (x + ts.x / 2 < x_label_left - 6) dl->AddText(ImVec2(x - ts.x / 2, p1.y + 2), text, buf);
    }
    dl->AddText(ImVec2(x_label_left, p1.y + 2), text, style.x_label);
    if (style.marks) {
        const ImU32 mark = IM_COL32(255, 170, 60, 220);
        for (double m : *style.marks) {
            if (m < x_lo || m > x_hi) continue;
            const float x = to_screen(m, y_lo).x;
            for (float y = p0.y; y < p1.y; y += 8) dl->AddLine(ImVec2(x, y), ImVec2(x, std::min(y + 4, p1.y)), mark, 1.5f);
            dl->AddText(ImVec2(x + 3, p0.y + 2), mark, "swap");
        }
    }

    dl->PushClipRect(p0, p1, true);
    std::vector<ImVec2> screen;
    for (size_t i = 0; i < lines.size(); ++i) {
        for (int pass = 0; pass < 2; ++pass) {
            const auto &pts = pass == 0 ? faint[i] : solid[i];
            if (pts.empty()) continue;
            const ImU32 colour = pass == 0 ? faded(lines[i].colour, 0.25f) : lines[i].colour;
            screen.clear();
            for (const auto &p : pts) screen.push_back(to_screen(p.x, p.y));
            if (screen.size() > static_cast<size_t>(columns)) draw_envelope(dl, screen, colour);
            else if (screen.size() > 1) dl->AddPolyline(screen.data(), static_cast<int>(screen.size()), colour, 0, pass ? 1.5f : 1.0f);
            const bool sparse = screen.size() * 4 < static_cast<size_t>(columns); // room for a dot per point
            if (pass == 1 && ((lines[i].markers && sparse) || screen.size() == 1))
                for (const auto &s : screen) dl->AddCircleFilled(s, 2.5f, colour);
        }
    }
    dl->PopClipRect();
    dl->AddRect(p0, p1, IM_COL32(80, 84, 92, 255));

    // Hover readout: the nearest point of every line to the cursor's x, with its exact values.
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    if (!hovered || mouse.x < p0.x || mouse.x > p1.x) return;
    dl->AddLine(ImVec2(mouse.x, p0.y), ImVec2(mouse.x, p1.y), IM_COL32(200, 200, 200, 120));
    const double x = x_lo + (mouse.x - p0.x) / (p1.x - p0.x) * (x_hi - x_lo);
    ImGui::BeginTooltip();
    for (const auto &l : lines) {
        if (!l.x || !l.y || l.y->empty()) continue;
        const size_t i = nearest_index(*l.x, x);
        const ImVec2 s = to_screen((*l.x)[i], style.log_y ? std::log10((*l.y)[i]) : (*l.y)[i]);
        if (s.y >= p0.y && s.y <= p1.y) dl->AddCircle(s, 4, l.colour);
        ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(l.colour), "%s", l.label.c_str());
        ImGui::SameLine();
        char v[32], r[32];
        format_value(v, sizeof v, "%.6g", (*l.y)[i]);
        if (l.raw) {
            format_value(r, sizeof r, "%.6g", (*l.raw)[i]);
            ImGui::Text("raw %s  smoothed %s", r, v);
        } else {
            ImGui::Text("%s", v);
        }
        ImGui::SameLine();
        if (l.step) ImGui::Text("  step %.0f, %.1f s", (*l.step)[i], (*l.x)[i]);
        else ImGui::Text("  %s %.6g", style.x_label, (*l.x)[i]);
    }
    ImGui::EndTooltip();
}

ImU32 utilisation_colour(double u) {
    if (!(u > 0)) return IM_COL32(150, 20, 30, 255);
    auto mix = [](ImVec4 a, ImVec4 b, float t) {
        return ImGui::ColorConvertFloat4ToU32(ImVec4(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t, a.z + (b.z - a.z) * t, 1));
    };
    const ImVec4 low(0.10f, 0.25f, 0.65f, 1), fair(0.35f, 0.38f, 0.42f, 1), high(0.98f, 0.62f, 0.10f, 1);
    if (u < 1) return mix(low, fair, static_cast<float>(u));
    return mix(fair, high, static_cast<float>(std::min(1.0, (u - 1.0))));
}

void load_heatmap(const RunData &run, int window) {
    if (run.layers.empty()) {
        ImGui::TextDisabled("no MoE layers in this run");
        return;
    }
    int64_t experts = 0;
    for (const auto &l : run.layers) experts = std::max(experts, l.num_experts);
    const float label_w = 34, width = ImGui::GetContentRegionAvail().x - label_w;
    const float cell_w = std::max(6.0f, width / static_cast<float>(std::max<int64_t>(1, experts)));
    const float cell_h = std::clamp(cell_w * 0.5f, 14.0f, 26.0f);
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    ImDrawList *dl = ImGui::GetWindowDrawList();
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    char buf[32];
    for (size_t li = 0; li < run.layers.size(); ++li) {
        const auto &l = run.layers[li];
        const float y = origin.y + static_cast<float>(li) * cell_h;
        std::snprintf(buf, sizeof buf, "L%lld", static_cast<long long>(l.layer));
        dl->AddText(ImVec2(origin.x, y + (cell_h - ImGui::GetTextLineHeight()) / 2), IM_COL32(200, 200, 200, 255), buf);
        const std::vector<double> util = recent_utilisation(l, window);
        for (size_t e = 0; e < util.size(); ++e) {
            const ImVec2 a(origin.x + label_w + static_cast<float>(e) * cell_w, y), b(a.x + cell_w - 1, y + cell_h - 1);
            dl->AddRectFilled(a, b, utilisation_colour(util[e]));
            if (!(util[e] > 0)) dl->AddRect(a, b, IM_COL32(255, 60, 60, 255), 0, 0, 2); // dead: outlined
            if (cell_w >= 34) {
                std::snprintf(buf, sizeof buf, util[e] > 0 ? "%.2f" : "dead", util[e]);
                const ImVec2 ts = ImGui::CalcTextSize(buf);
                dl->AddText(ImVec2((a.x + b.x - ts.x) / 2, (a.y + b.y - ts.y) / 2), IM_COL32(240, 240, 240, 255), buf);
            }
            if (mouse.x >= a.x && mouse.x < b.x && mouse.y >= a.y && mouse.y < b.y && ImGui::IsWindowHovered())
                ImGui::SetTooltip("layer %lld, expert %zu: %.3f x fair share over the last %d steps",
                                  static_cast<long long>(l.layer), e, util[e], window);
        }
    }
    ImGui::Dummy(ImVec2(label_w + cell_w * static_cast<float>(experts), cell_h * static_cast<float>(run.layers.size())));
}

void load_over_time(const RunData &run, float strip_height) {
    const float label_w = 34;
    ImDrawList *dl = ImGui::GetWindowDrawList();
    char buf[16];
    for (const auto &l : run.layers) {
        const size_t rows = l.load_step.size();
        const ImVec2 origin = ImGui::GetCursorScreenPos();
        const float width = ImGui::GetContentRegionAvail().x - label_w;
        ImGui::Dummy(ImVec2(label_w + width, strip_height + 3));
        std::snprintf(buf, sizeof buf, "L%lld", static_cast<long long>(l.layer));
        dl->AddText(ImVec2(origin.x, origin.y + (strip_height - ImGui::GetTextLineHeight()) / 2), IM_COL32(200, 200, 200, 255), buf);
        if (rows == 0 || l.num_experts == 0 || width < 4) continue;
        const size_t e_count = static_cast<size_t>(l.num_experts);
        const int columns = std::max(1, static_cast<int>(std::min<double>(width, static_cast<double>(rows))));
        const float col_w = width / static_cast<float>(columns), row_h = strip_height / static_cast<float>(e_count);
        std::vector<double> sum(e_count);
        for (int c = 0; c < columns; ++c) {
            const size_t r0 = rows * static_cast<size_t>(c) / static_cast<size_t>(columns);
            const size_t r1 = std::max(r0 + 1, rows * static_cast<size_t>(c + 1) / static_cast<size_t>(columns));
            std::fill(sum.begin(), sum.end(), 0.0);
            double total = 0;
            for (size_t r = r0; r < r1; ++r)
                for (size_t e = 0; e < e_count; ++e) {
                    const double v = l.tokens_per_expert[r * e_count + e];
                    sum[e] += v;
                    total += v;
                }
            for (size_t e = 0; e < e_count; ++e) {
                const double u = total > 0 ? sum[e] * static_cast<double>(e_count) / total : 0.0;
                const ImVec2 a(origin.x + label_w + static_cast<float>(c) * col_w, origin.y + static_cast<float>(e) * row_h);
                dl->AddRectFilled(a, ImVec2(a.x + col_w + 0.5f, a.y + row_h), utilisation_colour(u));
            }
        }
    }
}

} // namespace cdrmix::ui
