// The name and layout of a run folder, declared once: the Run creates folders
// with them, resume and `cdrmix eval` find them with them.
#pragma once

#include <cstdint>
#include <cstdio>
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
// One checkpoint's folder under checkpoints/: step-000600.
inline std::string checkpoint_folder(int64_t step) {
    char name[32];
    std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
    return name;
}
// The step of a checkpoint folder's name, or -1 for any other name.
inline int64_t checkpoint_step(const std::string &folder) {
    if (folder.size() < 6 || folder.compare(0, 5, "step-") != 0) return -1;
    int64_t step = 0;
    for (size_t i = 5; i < folder.size(); ++i) {
        if (folder[i] < '0' || folder[i] > '9' || step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (folder[i] - '0');
    }
    return checkpoint_folder(step) == folder ? step : -1;
}
} // namespace run_layout

} // namespace cdrmix
