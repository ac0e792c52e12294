#include "core/presets.hpp"
#include "core/plugin_loader.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

// The source tree's presets, for a program started from the build tree's bin/
// (CMake compiles both folders in); an installed copy never reads the source tree.
std::string build_tree_presets() {
    std::error_code ec;
    if (!fs::equivalent(executable_dir(), CDRMIX_BUILD_BIN_DIR, ec)) return "";
    return (fs::path(CDRMIX_SOURCE_DIR) / "configs" / "models").string();
}

std::string joined(const std::vector<std::string> &items) {
    std::string out;
    for (const auto &item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

} // namespace

std::vector<std::string> preset_dirs() {
    std::vector<std::string> candidates;
    if (const char *env = std::getenv("CDRMIX_PRESET_PATH")) {
        std::stringstream ss(env);
        for (std::string item; std::getline(ss, item, ':');)
            if (!item.empty()) candidates.push_back(item);
    }
    candidates.push_back("./configs/models");
    candidates.push_back(build_tree_presets());
    candidates.push_back((fs::path(executable_dir()) / ".." / "share" / "cdrmix" / "models").lexically_normal().string());
    std::vector<std::string> dirs;
    std::error_code ec;
    for (const auto &dir : candidates)
        if (!dir.empty() && fs::is_directory(dir, ec) && std::find(dirs.begin(), dirs.end(), dir) == dirs.end())
            dirs.push_back(dir);
    return dirs;
}

std::string resolve_preset(const std::string &name_or_path) {
    std::error_code ec;
    if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
    const auto dirs = preset_dirs();
    for (const auto &dir : dirs)
        for (const std::string &file : {name_or_path, name_or_path + ".yaml"})
            if (fs::is_regular_file(fs::path(dir) / file, ec)) return (fs::path(dir) / file).lexically_normal().string();
    const std::string near = closest_word(fs::path(name_or_path).stem().string(), preset_names());
    const std::string searched = dirs.empty() ? "no preset folder exists" : "searched " + joined(dirs);
    throw Error("no preset '" + name_or_path + "' (" + searched + ")" +
                (near.empty() ? "" : "; closest: '" + near + "'") +
                "; give a YAML file or a preset name, or add folders to $CDRMIX_PRESET_PATH");
}

std::vector<std::string> preset_names() {
    std::set<std::string> names;
    std::error_code ec;
    for (const auto &dir : preset_dirs())
        for (const auto &entry : fs::directory_iterator(dir, ec))
            if (entry.path().extension() == ".yaml") names.insert(entry.path().stem().string());
    return {names.begin(), names.end()};
}

} // namespace cdrmix
