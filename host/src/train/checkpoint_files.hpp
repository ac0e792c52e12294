// What the checkpoint writer (checkpoint.cpp) and reader (checkpoint_files.cpp) share.
#pragma once

namespace cdrmix {

// Written last into every checkpoint folder: each file's size and CRC-32C.
inline constexpr const char *kManifest = "manifest.json";

} // namespace cdrmix
