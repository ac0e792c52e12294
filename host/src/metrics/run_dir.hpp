// A run directory: runs/<name>-<YYYYmmdd-HHMMSS>/ holding the resolved config,
// a copy of the script, the plugin list, metrics.jsonl and checkpoints/:
// enough to reproduce the run.
#pragma once

#include <cdrmix/config.hpp>

#include <string>

namespace cdrmix {

class RunDir {
public:
    // Creates a fresh directory under root (never reuses an existing one).
    RunDir(const std::string &root, const std::string &name);

    const std::string &path() const { return path_; }
    std::string file(const std::string &name) const { return path_ + "/" + name; }
    std::string checkpoints() const { return path_ + "/checkpoints"; }

private:
    std::string path_;
};

// Writes text to path atomically: temp file in the same folder, fsync, rename.
void write_file_atomic(const std::string &path, const std::string &contents);
void write_json_atomic(const std::string &path, const Json &j);

} // namespace cdrmix
