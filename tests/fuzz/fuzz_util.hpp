// Shared by the harnesses: parsers that take a path get the fuzzer's bytes as a
// file in a per-process directory (under $TMPDIR, else /dev/shm, else /tmp).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fuzz {

inline const std::filesystem::path &scratch_dir() {
    static const std::filesystem::path dir = [] {
        const char *base = std::getenv("TMPDIR");
        std::string root = base && *base ? base : std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
        std::string tmpl = root + "/cdrmix-fuzz-XXXXXX";
        if (!::mkdtemp(tmpl.data())) std::abort();
        std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
        return std::filesystem::path(tmpl);
    }();
    return dir;
}

// Writes the input as scratch_dir()/name and returns its path.
inline std::string write_input(const uint8_t *data, size_t size, const std::string &name) {
    const std::string path = (scratch_dir() / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(size));
    if (!out) std::abort();
    return path;
}

} // namespace fuzz
