// Follows a metrics.jsonl that another process may still be appending to:
// each poll reads what was added since the last one and returns the complete
// lines; a line still being written stays buffered until its newline arrives.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix::ui {

class JsonlFollower {
public:
    explicit JsonlFollower(std::string path);

    // Parses up to max_bytes of new data; malformed lines are counted and skipped.
    // A file that shrank (rewritten) is read again from the start.
    std::vector<nlohmann::json> poll(size_t max_bytes = 8u << 20);
    // True when the last poll reached the end of the file as it was then.
    bool caught_up() const { return caught_up_; }
    int64_t bad_lines() const { return bad_lines_; }
    const std::string &path() const { return path_; }

private:
    std::string path_;
    uint64_t offset_ = 0;
    std::string partial_;
    bool caught_up_ = false;
    int64_t bad_lines_ = 0;
};

} // namespace cdrmix::ui
