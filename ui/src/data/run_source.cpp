#include "data/run_source.hpp"

#include "data/jsonl_follower.hpp"
#include "run/run_folder.hpp"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <stdexcept>

namespace fs = std::filesystem;

namespace cdrmix::ui {

RunSource run_source(const std::string &path) {
    const fs::path p(path);
    std::error_code ec;
    const bool is_dir = fs::is_directory(p, ec);
    const fs::path file = is_dir ? p / run_layout::metrics : p;
    if (!fs::is_regular_file(file, ec))
        throw std::runtime_error(path + ": no " + (is_dir ? std::string(run_layout::metrics) + " in that directory"
                                                          : std::string("such file or directory")));
    const fs::path named = fs::absolute(is_dir ? p : p.parent_path()).lexically_normal();
    std::string name = named.filename().string();
    if (name.empty()) name = named.parent_path().filename().string(); // "runs/a/" names "a"
    return {name, file.string()};
}

std::vector<RunSource> run_sources(const std::string &path) {
    std::error_code ec;
    const fs::path root(path);
    if (!fs::is_directory(root, ec) || fs::is_regular_file(root / run_layout::metrics, ec)) return {run_source(path)};
    std::vector<fs::path> found;
    for (const auto &e : fs::directory_iterator(root, ec)) {
        if (!e.is_directory(ec)) continue;
        if (fs::is_regular_file(e.path() / run_layout::metrics, ec)) {
            found.push_back(e.path());
            continue;
        }
        for (const auto &inner : fs::directory_iterator(e.path(), ec))
            if (inner.is_directory(ec) && fs::is_regular_file(inner.path() / run_layout::metrics, ec)) found.push_back(inner.path());
    }
    if (found.empty()) return {run_source(path)}; // its error names the path
    std::sort(found.begin(), found.end());
    std::vector<RunSource> sources;
    for (const auto &dir : found) {
        RunSource s = run_source(dir.string());
        const fs::path below = dir.lexically_relative(root);
        // A sweep point holds one run: the point names it; a run directly in the folder keeps its own name.
        if (std::distance(below.begin(), below.end()) == 2) s.name = below.begin()->string();
        sources.push_back(std::move(s));
    }
    return sources;
}

RunData read_run(const RunSource &source, int64_t *bad_lines, uint64_t max_bytes) {
    std::error_code ec;
    const uint64_t size = fs::file_size(source.metrics, ec);
    if (ec) throw std::runtime_error(source.metrics + ": cannot read: " + ec.message());
    if (size > max_bytes)
        throw std::runtime_error(source.metrics + ": " + std::to_string(size) + " bytes, more than the " +
                                 std::to_string(max_bytes) + " a run's metrics may hold");
    RunData run;
    run.name = source.name;
    JsonlFollower follower(source.metrics);
    do {
        for (const auto &record : follower.poll()) ingest(run, record);
    } while (!follower.caught_up());
    if (bad_lines) *bad_lines = follower.bad_lines();
    return run;
}

} // namespace cdrmix::ui
