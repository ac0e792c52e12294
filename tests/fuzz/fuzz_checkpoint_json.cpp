// The checkpoint files a resume reads before the weights (train/checkpoint_files.cpp):
// first byte even, the input is a checkpoint's manifest.json, verified against
// a folder holding two small files (the harness writes one of them to match a
// manifest entry, so verification gets past the first file); odd, it is a
// trainer_state.json whose rng_state is restored into the CPU generator.
#include "fuzz_util.hpp"

#include "train/checkpoint.hpp"

#include <cdrmix/error.hpp>

#include <c10/util/Logging.h>

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    c10::SetStackTraceFetcher([] { return std::string(); });
    std::ofstream(fuzz::scratch_dir() / "model.safetensors", std::ios::binary) << "weights";
    std::ofstream(fuzz::scratch_dir() / "tokenizer.json", std::ios::binary) << "{}";
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const bool manifest = data[0] % 2 == 0;
    fuzz::write_input(data + 1, size - 1, manifest ? "manifest.json" : "trainer_state.json");
    const std::string dir = fuzz::scratch_dir().string();
    try {
        if (manifest) {
            cdrmix::verify_checkpoint(dir);
        } else {
            const cdrmix::Json state = cdrmix::read_checkpoint_json(dir, "trainer_state.json");
            if (state.is_object() && state.contains("rng_state") && state["rng_state"].is_string())
                cdrmix::set_cpu_rng_state(state["rng_state"].get<std::string>(), dir + "/trainer_state.json");
        }
    } catch (const cdrmix::Error &) {
    }
    return 0;
}
