#include "core/files.hpp"

#include <cdrmix/error.hpp>

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace cdrmix {

namespace {

int remove_entry(const char *path, const struct stat *, int, struct FTW *) { return std::remove(path); }

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

} // namespace cdrmix
