#pragma once

#include <cdrmix/config.hpp>

#include <string>

namespace cdrmix {

// Reads a YAML file into JSON (scalars typed: int, float, bool, null, string;
// quoted scalars stay strings). Errors name the file and line. The file is
// untrusted: its top level must be a mapping, it may hold at most 16 MiB and
// expand to at most a million values (aliases counted at each use).
Json load_yaml_file(const std::string &path);

} // namespace cdrmix
