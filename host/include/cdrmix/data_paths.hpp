// Turning the `path` of a data config into a sorted list of files.
#pragma once

#include <cdrmix/config.hpp>

#include <string>
#include <vector>

namespace cdrmix {

// Each pattern is a file, a folder (every regular file under it, recursively)
// or a glob; "**/" in a glob matches any number of folders, including none
// ("data/**/*.jsonl"). Files come back sorted, without duplicates. A pattern
// that matches nothing throws cdrmix::Error "<where>: no <what> files at '<pattern>'".
std::vector<std::string> expand_paths(const std::vector<std::string> &patterns, const std::string &what,
                                      const std::string &where);

// The patterns under `key`: one string or a list of strings (empty when the key is absent).
std::vector<std::string> path_patterns(const Config &cfg, const std::string &key);

} // namespace cdrmix
