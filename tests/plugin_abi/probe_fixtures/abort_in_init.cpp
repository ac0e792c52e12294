// A plugin whose static initializer calls abort().
#include <cdrmix/sdk.hpp>

#include <cstdlib>

namespace {
const int aborted = (std::abort(), 0);
} // namespace

CDRMIX_PLUGIN("fixture_abort_in_init", "1.0", "test fixture") { (void)registry; }
