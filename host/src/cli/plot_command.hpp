// `cdrmix plot RUN_DIR... [--metric loss,load_cv] [--smooth S] [--log-y] [--x step|time] -o fig.png|fig.svg`:
// the dashboard's plots of one or more runs (their metrics.jsonl) written to a
// file without a window, for papers and CI artefacts (ui/src/figure/).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace cdrmix {

struct PlotOptions {
    std::vector<std::string> runs, metrics = {"loss"};
    double smoothing = 0.6;
    bool log_y = false;
    std::string x_axis = "step";
    int width = 800, panel_height = 300;
    std::string out;
};

CLI::App *add_plot_command(CLI::App &app, PlotOptions &options);

// Returns the exit code; a user's mistake throws cdrmix::Error (one line naming the flag or file).
int run_plot_command(const PlotOptions &options);

} // namespace cdrmix
