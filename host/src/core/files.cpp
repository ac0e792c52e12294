#include "core/files.hpp"

#include <cdrmix/error.hpp>

#include <ftw.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

namespace cdrmix {

namespace {

int remove_entry(const char *path, const struct stat *, int, struct FTW *) { return std::remove(path); }

const std::array<uint32_t, 256> &crc32c_table() {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1; // reflected Castagnoli
            t[i] = c;
        }
        return t;
    }();
    return table;
}

} // namespace

void remove_tree(const std::filesystem::path &path, std::error_code &ec) {
    ec.clear();
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) ec.assign(errno, std::generic_category());
        return;
    }
    // Depth first, without following links: a link inside is removed, not its target.
    if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        ec.assign(errno ? errno : EIO, std::generic_category());
}

void remove_tree(const std::filesystem::path &path) {
    std::error_code ec;
    remove_tree(path, ec);
    if (ec) throw Error(path.string() + ": cannot remove: " + ec.message());
}

uint32_t crc32c(std::string_view bytes, uint32_t crc) {
    const auto &t = crc32c_table();
    uint32_t c = ~crc;
    for (unsigned char b : bytes) c = t[(c ^ b) & 0xFF] ^ (c >> 8);
    return ~c;
}

std::pair<uint32_t, uint64_t> file_crc32c(const std::filesystem::path &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path.string() + ": cannot open to check it");
    std::vector<char> buf(1 << 20);
    uint32_t crc = 0;
    uint64_t bytes = 0;
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        const auto n = size_t(in.gcount());
        crc = crc32c(std::string_view(buf.data(), n), crc);
        bytes += n;
    }
    if (in.bad()) throw Error(path.string() + ": read error while checking it");
    return {crc, bytes};
}

} // namespace cdrmix
