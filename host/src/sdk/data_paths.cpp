#include <cdrmix/data_paths.hpp>
#include <cdrmix/error.hpp>

#include <fnmatch.h>
#include <glob.h>

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

// "a/**/b*.x": walk a/ recursively and match each path against the pattern,
// and against it with "**/" removed (zero folders).
std::vector<std::string> expand_recursive_glob(const std::string &pattern) {
    const size_t star = pattern.find("**");
    std::string base = pattern.substr(0, star);
    if (base.empty()) base = ".";
    std::string shallow = pattern;
    for (size_t at; (at = shallow.find("**/")) != std::string::npos;) shallow.erase(at, 3);
    std::vector<std::string> files;
    std::error_code ec;
    if (!fs::is_directory(base, ec)) return files;
    const bool dot_base = pattern.compare(0, 2, "**") == 0;
    for (const auto &entry : fs::recursive_directory_iterator(base, ec)) {
        if (!entry.is_regular_file(ec)) continue;
        std::string path = entry.path().string();
        if (dot_base && path.compare(0, 2, "./") == 0) path.erase(0, 2);
        if (fnmatch(pattern.c_str(), path.c_str(), 0) == 0 || fnmatch(shallow.c_str(), path.c_str(), 0) == 0)
            files.push_back(path);
    }
    return files;
}

std::vector<std::string> expand_one(const std::string &pattern) {
    std::vector<std::string> files;
    std::error_code ec;
    if (fs::is_directory(pattern, ec)) {
        for (const auto &entry : fs::recursive_directory_iterator(pattern, ec))
            if (entry.is_regular_file(ec)) files.push_back(entry.path().string());
    } else if (fs::is_regular_file(pattern, ec)) {
        files.push_back(pattern);
    } else if (pattern.find("**") != std::string::npos) {
        files = expand_recursive_glob(pattern);
    } else {
        glob_t g{};
        if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; ++i)
                if (fs::is_regular_file(g.gl_pathv[i], ec)) files.emplace_back(g.gl_pathv[i]);
        globfree(&g);
    }
    return files;
}

} // namespace

Schema path_keys(const std::string &what) {
    Schema s;
    s.any("path", "the " + what + " files: a file, a folder (read recursively) or a glob (\"**/\" spans folders), "
                  "or a list of them")
        .required();
    return s;
}

Schema val_path_keys(const std::string &what) {
    Schema s;
    s.any("val_path", "the val split's " + what + " files, in the same forms as path (then no val_fraction)");
    return s;
}

std::vector<std::string> expand_paths(const std::vector<std::string> &patterns, const std::string &what,
                                      const std::string &where) {
    std::vector<std::string> all;
    for (const auto &pattern : patterns) {
        std::vector<std::string> files = expand_one(pattern);
        if (files.empty()) {
            std::error_code ec;
            const auto st = fs::status(pattern, ec);
            if (fs::exists(st) && !fs::is_directory(st) && !fs::is_regular_file(st))
                throw Error(where + ": '" + pattern + "' is not a regular file (a device, FIFO or socket); give " +
                            what + " files, a folder or a glob");
            throw Error(where + ": no " + what + " files at '" + pattern + "'");
        }
        all.insert(all.end(), files.begin(), files.end());
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return all;
}

namespace {

// A relative path written in a script or YAML file is looked for beside that
// file first, so an experiment runs from any folder; then in the working
// directory (where the command line's paths always go). Globs stay as written.
std::string beside_source(const Config &cfg, const std::string &key, const std::string &pattern) {
    std::error_code ec;
    const fs::path p(pattern);
    if (p.is_absolute() || pattern.find_first_of("*?[") != std::string::npos) return pattern;
    const std::string origin = cfg.source_of(key);
    if (origin.empty() || !fs::is_regular_file(origin, ec)) return pattern;
    const fs::path beside = fs::path(origin).parent_path() / p;
    return fs::exists(beside, ec) ? beside.lexically_normal().string() : pattern;
}

} // namespace

std::vector<std::string> path_patterns(const Config &cfg, const std::string &key) {
    const Json value = cfg.raw(key);
    std::vector<std::string> patterns;
    if (value.is_null()) return patterns;
    if (value.is_string()) return {beside_source(cfg, key, value.get<std::string>())};
    if (value.is_array() && !value.empty() && std::all_of(value.begin(), value.end(), [](const Json &v) { return v.is_string(); })) {
        for (const auto &v : value) patterns.push_back(beside_source(cfg, key, v.get<std::string>()));
        return patterns;
    }
    throw Error(cfg.where(key) + ": key '" + key + "' must be a file, folder or glob, or a list of them");
}

} // namespace cdrmix
