// `cdrmix gui`: the dashboard on the main thread, fed either by a Lua script
// running on a worker thread in this process (with run controls and sampling)
// or by metrics.jsonl files that other processes write (--watch).
#pragma once

#include "lua/runtime.hpp"

#include <app.hpp>

#include <string>
#include <vector>

namespace cdrmix {

// Runs the script with the dashboard; returns the script's exit code.
int run_script_gui(lua::RunOptions run, const ui::AppOptions &app);

// Shows the runs in these directories (or metrics.jsonl files), following them as they grow.
int run_watch_gui(const std::vector<std::string> &paths, const ui::AppOptions &app);

} // namespace cdrmix
