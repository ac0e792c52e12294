// What a run folder says about how it was made (config.json, plugins.json),
// and the `cdrmix run` command line that runs it again: shared by `cdrmix
// replay` (the same run, compared) and `cdrmix branch` (the run continued from
// one of its checkpoints with another router).
#pragma once

#include <cdrmix/config.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace cdrmix {

struct RecordedRun {
    std::filesystem::path dir;
    Json config;                        // config.json
    Json environment;                   // config.json's "environment" (run/environment.hpp)
    Json plugins;                       // plugins.json
    std::string script_copy;            // the script's copy inside the run folder
    std::string script;                 // the script as the run named it (relative to its working folder)
    std::vector<std::string> overrides; // the command line's key=value settings
};

// Reads and checks a single-process run folder; `command` ("replay",
// "branch") starts each error, which names the file and what is missing.
RecordedRun read_recorded_run(const std::filesystem::path &dir, const std::string &command);

// A run folder's JSON file, read whole (bounded) and parsed; throws naming it.
Json read_run_json(const std::filesystem::path &path, const std::string &command);

// A string field of an untrusted object, or `fallback` when absent or not a string.
std::string text_field(const Json &j, const char *key, const std::string &fallback);

// `cdrmix [--plugin-path P]... [--threads N] --device D run SCRIPT_COPY OVERRIDES... --headless --runs-dir RUNS
//  --script-origin SCRIPT`
// with the recorded thread count and device unless threads > 0 or device is not "cpu".
std::vector<std::string> rerun_args(const RecordedRun &run, const std::vector<std::string> &plugin_paths, int threads,
                                    const std::string &device, const std::string &runs_dir);
// The thread count rerun_args uses (0: LibTorch's default).
int rerun_threads(const RecordedRun &run, int threads);
std::string rerun_device(const RecordedRun &run, const std::string &device);

} // namespace cdrmix
