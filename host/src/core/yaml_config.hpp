#pragma once

#include <cdrmix/config.hpp>

#include <string>

namespace cdrmix {

// Reads a YAML file into JSON (scalars typed: int, float, bool, null, string;
// quoted scalars stay strings). Errors name the file and line.
Json load_yaml_file(const std::string &path);

} // namespace cdrmix
