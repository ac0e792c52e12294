// Finds and loads plugin shared libraries. A bad library (not a plugin, built
// for another ABI or LibTorch, throwing while registering, clashing names) is
// reported with a one-line reason naming the file and never crashes the host.
#pragma once

#include <cdrmix/registry.hpp>

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
    explicit PluginLoader(Registry &registry) : registry_(registry) {}

    // Search order: the host's own plugin folder, $CDRMIX_PLUGIN_PATH (colon-separated),
    // then the --plugin-path folders. Missing folders are skipped.
    static std::vector<std::string> search_path(const std::vector<std::string> &extra_dirs);

    void load_all(const std::vector<std::string> &dirs);
    void load_directory(const std::string &dir);
    // Returns false (and records a problem) when the file was refused.
    bool load_file(const std::string &path);

    const std::vector<LoadedPlugin> &loaded() const { return loaded_; }
    const std::vector<PluginProblem> &problems() const { return problems_; }

private:
    bool refuse(const std::string &file, const std::string &message, const std::string &hint);

    Registry &registry_;
    std::vector<LoadedPlugin> loaded_;
    std::vector<PluginProblem> problems_;
    std::vector<std::string> seen_; // canonical paths already loaded
};

// The folder holding this executable (via /proc/self/exe).
std::string executable_dir();

} // namespace cdrmix
