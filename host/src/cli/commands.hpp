#pragma once

namespace cdrmix {

// The `cdrmix` command line: run, plugins, doctor. Returns the exit code.
int cli_main(int argc, char **argv);

} // namespace cdrmix
