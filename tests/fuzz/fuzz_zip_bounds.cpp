// check_zip_bounds over arbitrary bytes: the central directory reader that
// runs before LibTorch's zip reader on every .pt/.pth file a user hands over.
#include "core/zip_bounds.hpp"

#include <cdrmix/error.hpp>

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        cdrmix::check_zip_bounds(data, size, "input");
    } catch (const cdrmix::Error &) {
    }
    return 0;
}
