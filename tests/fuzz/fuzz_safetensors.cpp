// load_safetensors over arbitrary bytes: a header length, a JSON header and data.
#include "fuzz_tensor.hpp"
#include "fuzz_util.hpp"

#include "train/safetensors.hpp"

#include <cdrmix/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string path = fuzz::write_input(data, size, "model.safetensors");
    try {
        for (const auto &[name, tensor] : cdrmix::load_safetensors(path)) fuzz::touch(tensor);
    } catch (const cdrmix::Error &) {
    }
    return 0;
}
