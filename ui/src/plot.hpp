// Line plots and heatmaps drawn with ImGui's own draw lists (ImPlot is not in
// Debian). Curves are thinned per pixel column for drawing only.
#pragma once

#include "data/run_data.hpp"

#include <imgui.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix::ui {

struct PlotLine {
    std::string label;
    const std::vector<double> *x = nullptr;   // ascending
    const std::vector<double> *y = nullptr;   // drawn solid
    const std::vector<double> *raw = nullptr; // optional: drawn faintly beneath, shown on hover
    const std::vector<double> *step = nullptr; // optional: shown on hover when x is time
    ImU32 colour = 0xffffffff;
    bool markers = false; // evaluations: a dot per point while there is room for them
    // Changes whenever the data behind x/y/raw may have changed: thinned curves are
    // cached under it, so frames drawn for the mouse alone do not rescan 100k points.
    uint64_t revision = 0;
};

struct PlotStyle {
    float height = 160;
    bool log_y = false;
    const char *x_label = "step";
    const char *y_format = "%.4g";
    bool stats = true; // last / min / max per line in the legend
    // Events to mark (router swaps), in the plot's x units: a dashed vertical line each.
    const std::vector<double> *marks = nullptr;
};

void line_plot(const char *title, const std::vector<PlotLine> &lines, const PlotStyle &style);

// Colour of an expert's utilisation (1 = fair share): blue below, grey at 1,
// orange above, red for an expert that received nothing.
ImU32 utilisation_colour(double u);

// Layers x experts grid of utilisation over the latest `window` steps.
void load_heatmap(const RunData &run, int window);

// Per layer, experts x time strip: each pixel column averages the steps it covers.
void load_over_time(const RunData &run, float strip_height);

} // namespace cdrmix::ui
