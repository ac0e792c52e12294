// A plugin that loads cleanly and crashes in its register function.
#include <cdrmix/sdk.hpp>

CDRMIX_PLUGIN("fixture_crash_in_register", "1.0", "test fixture") {
    (void)registry;
    volatile int *nowhere = nullptr;
    *nowhere = 1;
}
