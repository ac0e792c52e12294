// Turning the `path` of a data config into a sorted list of files.
//
// Threads: every function may be called from any thread (they read the file
// system and the config only). Ownership: results are plain values.
// Errors: cdrmix::Error, one line naming `where` (or the config's owner) and
// the pattern or key at fault.
#pragma once

#include <cdrmix/config.hpp>
#include <cdrmix/schema.hpp>

#include <string>
#include <vector>

namespace cdrmix {

// The `path` key (required: a file, folder or glob, or a list of them) of a
// data source reading `what` files ("text", "token", "JSONL"), declared once for
// every source: its schema includes these keys.
Schema path_keys(const std::string &what);
// The optional `val_path` key: the val split's files, in the same forms.
Schema val_path_keys(const std::string &what);

// Each pattern is a file, a folder (every regular file under it, recursively)
// or a glob; "**/" in a glob matches any number of folders, including none
// ("data/**/*.jsonl"). Files come back sorted, without duplicates. A pattern
// that matches nothing throws cdrmix::Error "<where>: no <what> files at '<pattern>'".
std::vector<std::string> expand_paths(const std::vector<std::string> &patterns, const std::string &what,
                                      const std::string &where);

// The patterns under `key` (a string or a non-empty list; empty when absent; else throws naming the key). A relative,
// non-glob path written in a script or YAML file is taken beside that file when it exists there, else as written.
std::vector<std::string> path_patterns(const Config &cfg, const std::string &key);

} // namespace cdrmix
