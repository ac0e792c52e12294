// Bounds of a zip archive (torch.save's and LibTorch's .pt format), checked
// before LibTorch's reader opens it: that reader allocates whatever size a
// record's directory entry claims, so an 800-byte file could ask for 4 GB.
#pragma once

#include <cstdint>
#include <string>

namespace cdrmix {

// Reads the archive's central directory (zip64 included) and checks that every
// record lies inside the file (its local header, name and data) and claims no
// more than it can hold: a stored record its own size, a deflated one at most
// deflate's 1032:1 (LibTorch deflates the code files of a torch::save). Returns
// the number of records. Throws cdrmix::Error naming the file and the record.
int64_t check_zip_bounds(const std::string &path);
// The same over bytes in memory (`name` names them in errors).
int64_t check_zip_bounds(const unsigned char *data, uint64_t size, const std::string &name);

} // namespace cdrmix
