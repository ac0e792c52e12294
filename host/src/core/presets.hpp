// Model presets (configs/models/*.yaml) found by name from any directory, so
// `cdrmix describe cdrmix-small` and cdrmix.model("cdrmix-small") work outside
// the source tree, in the build tree as in an install.
#pragma once

#include <string>
#include <vector>

namespace cdrmix {

// The preset folders that exist, in search order: each entry of
// $CDRMIX_PRESET_PATH (colon-separated), ./configs/models, the source tree's
// configs/models when this program runs from its build tree, and
// <exe>/../share/cdrmix/models when it is installed.
std::vector<std::string> preset_dirs();

// name_or_path itself when it is an existing file; else NAME or NAME.yaml in
// the first preset folder holding it. Throws cdrmix::Error, one line naming
// the folders searched and the closest preset name.
std::string resolve_preset(const std::string &name_or_path);

// Every preset name (file name less .yaml) in the preset folders, sorted, once each.
std::vector<std::string> preset_names();

} // namespace cdrmix
