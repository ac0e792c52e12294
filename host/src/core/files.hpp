// File-system helpers the host needs beyond std::filesystem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace cdrmix {

// Removes a file or a whole folder tree (nothing if it does not exist); throws
// cdrmix::Error naming the path on failure. Used instead of
// std::filesystem::remove_all, which crashed on a non-empty folder in a process
// linked to the LibTorch of a PyTorch 2.x wheel (docs/backends.md).
void remove_tree(const std::filesystem::path &path);

// As above, reporting failure through `ec` instead of throwing.
void remove_tree(const std::filesystem::path &path, std::error_code &ec);

// CRC-32C (Castagnoli), as TFRecord and checkpoint manifests use it; `crc`
// continues a running value over consecutive pieces.
uint32_t crc32c(std::string_view bytes, uint32_t crc = 0);
// The CRC-32C of a file's bytes and their count, read in pieces; throws naming the file.
std::pair<uint32_t, uint64_t> file_crc32c(const std::filesystem::path &path);

} // namespace cdrmix
