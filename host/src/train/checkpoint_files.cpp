// The checkpoint files a resume reads besides the weights and the optimiser:
// the manifest (verified before anything else is read), the JSON files and
// the RNG state. Kept apart from checkpoint.cpp so the fuzz target
// (tests/fuzz/fuzz_checkpoint_json.cpp) compiles them without the model.
#include "train/checkpoint.hpp"
#include "train/checkpoint_files.hpp"

#include "core/files.hpp"

#include <cdrmix/error.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>

namespace fs = std::filesystem;

namespace cdrmix {

void verify_checkpoint(const std::string &checkpoint_dir) {
    const fs::path dir(checkpoint_dir);
    if (!fs::is_regular_file(dir / kManifest)) return; // written before manifests
    const Json manifest = read_checkpoint_json(checkpoint_dir, kManifest);
    const std::string where = (dir / kManifest).string();
    if (!manifest.contains("files") || !manifest["files"].is_object())
        throw Error(where + ": no 'files' table (not a checkpoint manifest)");
    for (const auto &[name, entry] : manifest["files"].items()) {
        if (name.find('/') != std::string::npos || name == ".." || !entry.is_object() ||
            !entry.contains("bytes") || !entry.contains("crc32c") || !entry["bytes"].is_number_unsigned() ||
            !entry["crc32c"].is_string())
            throw Error(where + ": malformed entry '" + name + "'");
        const fs::path file = dir / name;
        if (!fs::is_regular_file(file)) throw Error(file.string() + ": missing (the manifest lists it)");
        const auto [crc, bytes] = file_crc32c(file);
        char hex[9];
        std::snprintf(hex, sizeof hex, "%08x", crc);
        if (bytes != entry["bytes"].get<uint64_t>() || hex != entry["crc32c"].get<std::string>())
            throw Error(file.string() + ": does not match the checkpoint's manifest (" + std::to_string(bytes) +
                        " bytes, CRC-32C " + hex + "; written " + std::to_string(entry["bytes"].get<uint64_t>()) +
                        " bytes, " + entry["crc32c"].get<std::string>() + "): the file is corrupt");
    }
}

Json read_checkpoint_json(const std::string &checkpoint_dir, const std::string &file) {
    const std::string path = (fs::path(checkpoint_dir) / file).string();
    std::ifstream in(path);
    if (!in) throw Error(path + ": missing");
    try {
        return Json::parse(in);
    } catch (const Json::exception &e) { // a parse_error, or out_of_range for a number beyond a double (1e999)
        throw Error(path + ": malformed JSON: " + e.what());
    }
}

std::string cpu_rng_state() {
    at::Tensor s = at::detail::getDefaultCPUGenerator().get_state();
    static const char *digits = "0123456789abcdef";
    std::string hex;
    hex.reserve(static_cast<size_t>(s.numel()) * 2);
    const uint8_t *p = s.data_ptr<uint8_t>();
    for (int64_t i = 0; i < s.numel(); ++i) {
        hex.push_back(digits[p[i] >> 4]);
        hex.push_back(digits[p[i] & 15]);
    }
    return hex;
}

void set_cpu_rng_state(const std::string &hex, const std::string &where) {
    auto nibble = [&](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        throw Error(where + ": 'rng_state' is not hex text");
    };
    if (hex.size() % 2) throw Error(where + ": 'rng_state' has an odd length");
    at::Tensor s = at::empty({static_cast<int64_t>(hex.size() / 2)}, at::kByte);
    uint8_t *p = s.data_ptr<uint8_t>();
    for (size_t i = 0; i < hex.size() / 2; ++i) p[i] = static_cast<uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    try {
        gen.set_state(s);
    } catch (const c10::Error &) { // the generator checks the state's size
        throw Error(where + ": 'rng_state' (" + std::to_string(hex.size() / 2) +
                    " bytes) is not a CPU generator state of this LibTorch");
    }
}

} // namespace cdrmix
