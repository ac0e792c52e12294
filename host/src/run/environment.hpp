// What a run's numbers depend on besides its config, script and data: the
// program and LibTorch versions, the intra-op thread count, the device, the
// WKV kernel set, LibTorch's start seed, the working folder (relative data
// paths), and each plugin file's size and CRC-32C. Declared once here: the Lua
// runtime records it in every run folder (config.json's "environment",
// plugins.json) and `cdrmix replay` re-creates it and names what changed.
#pragma once

#include "core/plugin_loader.hpp"

#include <cdrmix/config.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix::run_environment {

// LibTorch's default generator is seeded with this when a script starts, so
// model initialisation is reproducible (lua::Runtime), unless `cdrmix run
// --seed` gives another start seed.
inline constexpr uint64_t kTorchSeed = 0;

namespace keys {
inline constexpr const char *environment = "environment"; // the key in config.json
inline constexpr const char *cdrmix = "cdrmix";
inline constexpr const char *libtorch = "libtorch";
inline constexpr const char *threads = "threads";
inline constexpr const char *device = "device";
inline constexpr const char *cpu_kernels = "cpu_kernels";
inline constexpr const char *torch_seed = "torch_seed";
inline constexpr const char *world_size = "world_size";
inline constexpr const char *cwd = "cwd";
// plugins.json entries
inline constexpr const char *name = "name";
inline constexpr const char *version = "version";
inline constexpr const char *file = "file";
inline constexpr const char *size = "size";
inline constexpr const char *crc32c = "crc32c";
} // namespace keys

// This process's environment, as a run started now with this start seed would record it.
Json current(const std::string &device, int world_size, uint64_t torch_seed);

// plugins.json: one entry per loaded plugin with its file's size and CRC-32C.
Json plugin_records(const std::vector<LoadedPlugin> &plugins);

// What differs between a recorded environment and plugin list and another
// (a replay's), one line each ("threads: 2 recorded, 1 now"); empty when alike.
// Either side may come from an untrusted file: wrong types count as differences.
std::vector<std::string> differences(const Json &env_recorded, const Json &plugins_recorded, const Json &env_now,
                                     const Json &plugins_now);

} // namespace cdrmix::run_environment
