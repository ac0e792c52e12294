#pragma once

#include <string>

namespace cdrmix {

// The `cdrmix` command line: run, plugins, doctor. Returns the exit code.
int cli_main(int argc, char **argv);

// Why `script` cannot be run as a Lua script file ("" when it can): missing, a folder, not a regular file.
std::string script_file_problem(const std::string &script);

} // namespace cdrmix
