// load_yaml_file over arbitrary bytes: yaml-cpp's parser, then the host's
// conversion to JSON with its value budget and decimal-only numbers.
#include "fuzz_util.hpp"

#include "core/yaml_config.hpp"

#include <cdrmix/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string path = fuzz::write_input(data, size, "config.yaml");
    try {
        const cdrmix::Json j = cdrmix::load_yaml_file(path);
        // A config is used as JSON afterwards: dumping it walks every value.
        (void)j.dump();
    } catch (const cdrmix::Error &) {
    }
    return 0;
}
