#include "data/jsonl_follower.hpp"

#include <fstream>

namespace cdrmix::ui {

JsonlFollower::JsonlFollower(std::string path) : path_(std::move(path)) {}

std::vector<nlohmann::json> JsonlFollower::poll(size_t max_bytes) {
    std::vector<nlohmann::json> records;
    std::ifstream in(path_, std::ios::binary | std::ios::ate);
    if (!in) { // not created yet: a run that has not published anything
        caught_up_ = true;
        return records;
    }
    const uint64_t size = static_cast<uint64_t>(in.tellg());
    if (size < offset_) {
        offset_ = 0;
        partial_.clear();
    }
    const uint64_t want = std::min<uint64_t>(size - offset_, max_bytes);
    std::string chunk(static_cast<size_t>(want), '\0');
    in.seekg(static_cast<std::streamoff>(offset_));
    in.read(chunk.data(), static_cast<std::streamsize>(want));
    chunk.resize(static_cast<size_t>(in.gcount()));
    offset_ += chunk.size();
    caught_up_ = offset_ >= size;

    partial_ += chunk;
    size_t start = 0;
    for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
        if (nl == start) continue;
        auto j = nlohmann::json::parse(partial_.begin() + static_cast<std::ptrdiff_t>(start),
                                       partial_.begin() + static_cast<std::ptrdiff_t>(nl), nullptr, false);
        if (j.is_discarded()) ++bad_lines_;
        else records.push_back(std::move(j));
    }
    partial_.erase(0, start);
    return records;
}

} // namespace cdrmix::ui
