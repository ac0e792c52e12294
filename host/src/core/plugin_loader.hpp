// Finds and loads plugin shared libraries. A bad library (not a plugin, built
// for another ABI or LibTorch, throwing while registering, clashing names) is
// reported with a one-line reason naming the file and never crashes the host;
// one that crashes, aborts, exits or hangs while loading is caught by loading
// it first in a child process (core/plugin_probe.hpp) and is never loaded here.
#pragma once

#include "core/plugin_probe.hpp"

#include <cdrmix/registry.hpp>

#include <optional>
#include <string>
#include <vector>

namespace cdrmix {

struct LoadedPlugin {
    std::string name;
    std::string version;
    std::string description;
    std::string file;
};

struct PluginProblem {
    std::string file;
    std::string message; // one line, names the file
    std::string hint;    // how to fix it
};

class PluginLoader {
public:
    // Without a probe (nullopt), files are loaded straight into this process.
    explicit PluginLoader(Registry &registry, std::optional<PluginProbe> probe = PluginProbe::for_this_host())
        : registry_(registry), probe_(std::move(probe)) {}

    // Search order: the host's own plugin folder, $CDRMIX_PLUGIN_PATH (colon-separated),
    // then the --plugin-path folders. Missing folders are skipped.
    static std::vector<std::string> search_path(const std::vector<std::string> &extra_dirs);

    // Every .so in the folders, probed together (one child process for the new ones).
    void load_all(const std::vector<std::string> &dirs);
    void load_directory(const std::string &dir);
    // Returns false (and records a problem) when the file was refused.
    bool load_file(const std::string &path);

    const std::vector<LoadedPlugin> &loaded() const { return loaded_; }
    const std::vector<PluginProblem> &problems() const { return problems_; }

private:
    bool refuse(const std::string &file, const std::string &message, const std::string &hint);
    // The files not loaded before (marking them seen), each with the probe's verdict.
    std::vector<std::pair<std::string, ProbeVerdict>> probe_new(const std::vector<std::string> &files);
    bool load_probed(const std::string &path, const ProbeVerdict &verdict);
    bool load_unprobed(const std::string &path);

    Registry &registry_;
    std::optional<PluginProbe> probe_;
    std::vector<LoadedPlugin> loaded_;
    std::vector<PluginProblem> problems_;
    std::vector<std::string> seen_; // canonical paths already loaded
};

// The folder holding this executable (via /proc/self/exe).
std::string executable_dir();

} // namespace cdrmix
