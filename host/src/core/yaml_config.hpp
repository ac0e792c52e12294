#pragma once

#include <cdrmix/config.hpp>

#include <string>

namespace cdrmix {

// Reads a YAML file into JSON (scalars typed: int, float, bool, null, string;
// quoted scalars stay strings). Errors name the file and line. The file is
// untrusted: its top level must be a mapping, it may hold at most 16 MiB and
// expand to at most a million values (aliases counted at each use).
Json load_yaml_file(const std::string &path);

// A number as people write it in configs and overrides: decimal digits, an
// optional fraction and exponent. Hex, inf, nan and padding are not numbers
// (strtod takes "0x10" as 16).
bool parse_decimal(const std::string &text, double &out);

} // namespace cdrmix
