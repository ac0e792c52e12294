// Where a run's records are on disk, declared once for everything that reads
// finished or running runs (`cdrmix gui --watch`, `cdrmix plot`): a run folder
// (its metrics.jsonl) or a metrics.jsonl file, named after its folder.
#pragma once

#include "data/run_data.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix::ui {

struct RunSource {
    std::string name;    // the run folder's name
    std::string metrics; // the metrics.jsonl path
};

// Throws std::runtime_error naming `path` when it is neither a folder holding
// metrics.jsonl nor a regular file.
RunSource run_source(const std::string &path);

// What a path the user gave holds: a run (run_source), or a folder of runs
// (runs/, a sweep's DIR with DIR/point-NNN/<run>/): every run folder in it, up
// to two levels down, sorted, each named by its path below `path` (a sweep's
// runs by their grid point, "point-001-seed-2", as its summary names them).
// Throws like run_source when there is none.
std::vector<RunSource> run_sources(const std::string &path);

// Every record of a run's metrics.jsonl as it is now, in a RunData named after
// the source. Lines that are not JSON are skipped and counted in *bad_lines.
// A file over max_bytes is refused (std::runtime_error naming it): records are
// kept in memory, and no run writes that much.
RunData read_run(const RunSource &source, int64_t *bad_lines, uint64_t max_bytes = uint64_t(4) << 30);

} // namespace cdrmix::ui
