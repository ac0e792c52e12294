// A plugin whose static initializer calls exit(3): the process ends "normally"
// in the middle of loading it.
#include <cdrmix/sdk.hpp>

#include <cstdlib>

namespace {
const int exited = (std::exit(3), 0);
} // namespace

CDRMIX_PLUGIN("fixture_exit_in_init", "1.0", "test fixture") { (void)registry; }
