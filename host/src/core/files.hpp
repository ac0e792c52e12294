// File-system helpers the host needs beyond std::filesystem.
#pragma once

#include <filesystem>

namespace cdrmix {

// Removes a file or a whole folder tree (nothing if it does not exist); throws
// cdrmix::Error naming the path on failure. Used instead of
// std::filesystem::remove_all, which crashed on a non-empty folder in a process
// linked to the LibTorch of a PyTorch 2.x wheel (docs/backends.md).
void remove_tree(const std::filesystem::path &path);

// As above, reporting failure through `ec` instead of throwing.
void remove_tree(const std::filesystem::path &path, std::error_code &ec);

} // namespace cdrmix
