#include "cli/plot_command.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

#include <figure/figure.hpp>
#include <figure/raster.hpp>
#include <figure/svg.hpp>
#include <data/run_source.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace cdrmix {

namespace {

std::string joined(const std::vector<std::string> &v) {
    std::string s;
    for (const auto &x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

// The file format, from the output's extension.
std::string output_format(const std::string &out) {
    std::string ext = std::filesystem::path(out).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".svg" || ext == ".png") return ext.substr(1);
    throw Error("plot: -o '" + out + "': the extension picks the format: .png or .svg");
}

void check_metrics(const std::vector<std::string> &metrics) {
    const auto &known = ui::figure_metrics();
    for (const auto &m : metrics) {
        if (std::find(known.begin(), known.end(), m) != known.end()) continue;
        const std::string near = closest_word(m, known);
        throw Error("plot: --metric '" + m + "' is not a metric" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                    " (metrics: " + joined(known) + ")");
    }
}

std::vector<ui::RunData> read_runs(const std::vector<std::string> &dirs) {
    std::vector<ui::RunData> runs;
    for (const auto &dir : dirs) {
        int64_t bad = 0;
        try {
            for (const auto &source : ui::run_sources(dir)) runs.push_back(ui::read_run(source, &bad));
        } catch (const std::runtime_error &e) {
            throw Error(std::string("plot: ") + e.what());
        }
        if (bad > 0)
            std::fprintf(stderr, "cdrmix plot: warning: %s: %lld lines were not JSON and were skipped\n", dir.c_str(),
                         static_cast<long long>(bad));
    }
    return runs;
}

} // namespace

CLI::App *add_plot_command(CLI::App &app, PlotOptions &o) {
    auto *cmd = app.add_subcommand("plot", "Draw the dashboard's plots of one or more runs to a PNG or SVG file");
    cmd->add_option("runs", o.runs, "Run folders (or metrics.jsonl files, or folders of runs such as a sweep), overlaid in this order")
        ->required();
    cmd->add_option("--metric", o.metrics, "Panels, top to bottom (default loss): " + joined(ui::figure_metrics()))
        ->delimiter(',');
    cmd->add_option("--smooth", o.smoothing,
                    "EMA weight for per-step curves, TensorBoard's debiased smoothing (default 0.6; 0 = raw)")
        ->check(CLI::Range(0.0, 0.999));
    cmd->add_flag("--log-y", o.log_y, "Log scale on every panel (values <= 0 are not drawn)");
    cmd->add_option("--x", o.x_axis, "x axis: step (default) or time (seconds since the run's first record)")
        ->check(CLI::IsMember({"step", "time"}));
    cmd->add_option("--width", o.width, "Figure width in pixels (default 800)")->check(CLI::Range(200, 20000));
    cmd->add_option("--panel-height", o.panel_height, "Height of each panel in pixels (default 300)")
        ->check(CLI::Range(120, 20000));
    cmd->add_option("-o,--output", o.out, "The file to write: .png or .svg")->required();
    return cmd;
}

int run_plot_command(const PlotOptions &o) {
    const std::string format = output_format(o.out);
    check_metrics(o.metrics);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<ui::RunData> runs = read_runs(o.runs);
    ui::FigureOptions fo;
    fo.metrics = o.metrics;
    fo.smoothing = o.smoothing;
    fo.log_y = o.log_y;
    fo.by_time = o.x_axis == "time";
    fo.width = o.width;
    fo.panel_height = o.panel_height;
    ui::Figure figure;
    try {
        figure = ui::build_figure(runs, fo);
    } catch (const std::invalid_argument &e) {
        throw Error(std::string("plot: ") + e.what());
    }
    for (const auto &p : figure.panels)
        if (!p.has_data())
            std::fprintf(stderr, "cdrmix plot: warning: no %s values in %s; its panel says so\n", p.metric.c_str(),
                         runs.size() == 1 ? "this run" : "any of the runs");
    write_file_atomic(o.out, format == "svg" ? ui::figure_svg(figure) : ui::encode_png(ui::render_figure(figure)));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("wrote %s: %zu run(s), %zu panel(s), %d x %d pixels (%.0f ms)\n", o.out.c_str(), runs.size(),
                figure.panels.size(), figure.width, figure.height, ms);
    return 0;
}

} // namespace cdrmix
