// The `gui` subcommand: `cdrmix gui script.lua [key=value ...]` runs the
// script with the live dashboard; `cdrmix gui --watch RUN_DIR [RUN_DIR ...]`
// shows runs written by other processes, following them as they grow.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <utility>
#include <vector>

namespace cdrmix {

struct GuiOptions {
    std::string script;
    std::vector<std::string> overrides, watch;
    std::string runs_dir = "runs";
    bool headless = false;
    std::string screenshot;
    std::string inspect; // once the script has ended, open the routing inspector on this text
    bool specialisation = false; // once the script has ended, count and open the specialisation view
    int frames = 0;
    double max_fps = 30;
    std::pair<int, int> size{1280, 800}; // window width, height
};

CLI::App *add_gui_command(CLI::App &app, GuiOptions &options);

// Returns the exit code; errors a user can cause are one line on stderr.
// device: the --device name (cpu, cuda, ...), resolved through the backend plugins.
int run_gui_command(const GuiOptions &options, const std::vector<std::string> &plugin_paths, const std::string &device);

} // namespace cdrmix
