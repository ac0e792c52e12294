#include "data/run_source.hpp"

#include "data/jsonl_follower.hpp"
#include "run/run_folder.hpp"

#include <filesystem>
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
