// read_torch_save over arbitrary bytes: LibTorch's zip reader, then the
// host's own pickle interpreter and tensor views over the zip's records.
#include "fuzz_tensor.hpp"
#include "fuzz_util.hpp"

#include "interop/import_torch_save.hpp"

#include <cdrmix/error.hpp>

#include <c10/util/Logging.h>

// Every c10::Error the zip reader throws collects and demangles a backtrace,
// which the host discards: without this the target ran at 55 inputs a second.
extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    c10::SetStackTraceFetcher([] { return std::string(); });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string path = fuzz::write_input(data, size, "model.pth");
    try {
        for (const auto &[name, tensor] : cdrmix::read_torch_save(path)) fuzz::touch(tensor);
    } catch (const cdrmix::Error &) {
    }
    return 0;
}
