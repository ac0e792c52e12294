// A plugin whose static initializer never returns.
#include <cdrmix/sdk.hpp>

#include <unistd.h>

namespace {
int wait_forever() {
    for (;;) pause();
}
const int never = wait_forever();
} // namespace

CDRMIX_PLUGIN("fixture_hang_in_init", "1.0", "test fixture") { (void)registry; }
