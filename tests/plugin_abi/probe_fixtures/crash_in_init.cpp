// A plugin whose static initializer dereferences a null pointer: loading it
// kills the loading process with SIGSEGV.
#include <cdrmix/sdk.hpp>

namespace {
int crash() {
    volatile int *nowhere = nullptr;
    return *nowhere;
}
const int crashed = crash();
} // namespace

CDRMIX_PLUGIN("fixture_crash_in_init", "1.0", "test fixture") { (void)registry; }
