// The name and layout of a run folder, declared once: the Run creates folders
// with them, resume and `cdrmix eval` find them with them.
#pragma once

#include <ctime>
#include <string>

namespace cdrmix {

// The folder-name format, in one place: <name>-YYYYmmdd-HHMMSS, with -N added
// when that folder exists already.
namespace run_folder {
std::string make(const std::string &name, std::time_t when, int attempt);
// Whether folder (a base name) is a run folder of exactly this run name ("quick"
// does not match "quick-long-20260101-000000").
bool is_run_of(const std::string &folder, const std::string &name);
} // namespace run_folder

// The files inside a run folder.
namespace run_layout {
inline constexpr const char *config = "config.json";
inline constexpr const char *plugins = "plugins.json";
inline constexpr const char *metrics = "metrics.jsonl";
inline constexpr const char *checkpoints = "checkpoints";
} // namespace run_layout

} // namespace cdrmix
