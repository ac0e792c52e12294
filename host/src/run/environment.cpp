#include "run/environment.hpp"

#include "core/files.hpp"
#include "core/system_info.hpp"

#include <cdrmix/ops.hpp>
#include <cdrmix/version.hpp>

#include <ATen/Parallel.h>

#include <cstdio>
#include <filesystem>
#include <map>

namespace cdrmix::run_environment {

Json current(const std::string &device, int world_size, uint64_t torch_seed) {
    std::error_code ec;
    const std::string cwd = std::filesystem::current_path(ec).string();
    std::string kernels;
    try {
        kernels = ops::wkv_cpu_kernel_isa();
    } catch (const std::exception &e) { // a bad CDRMIX_CPU_KERNELS: recorded as such
        kernels = std::string("unavailable: ") + e.what();
    }
    return {{keys::cdrmix, kSdkVersion},
            {keys::libtorch, torch_version_string()},
            {keys::threads, at::get_num_threads()},
            {keys::device, device},
            {keys::cpu_kernels, kernels},
            {keys::torch_seed, torch_seed},
            {keys::world_size, world_size},
            {keys::cwd, cwd}};
}

Json plugin_records(const std::vector<LoadedPlugin> &plugins) {
    Json out = Json::array();
    for (const auto &p : plugins) {
        Json entry = {{keys::name, p.name}, {keys::version, p.version}, {keys::file, p.file}};
        try {
            const auto [crc, size] = file_crc32c(p.file);
            char hex[16];
            std::snprintf(hex, sizeof hex, "%08x", crc);
            entry[keys::size] = size;
            entry[keys::crc32c] = hex;
        } catch (const std::exception &) {
            // A plugin file that vanished after loading: recorded without a hash, so a replay names it.
        }
        out.push_back(std::move(entry));
    }
    return out;
}

namespace {

std::string shown(const Json &j) {
    if (j.is_null()) return "(not recorded)";
    return j.is_string() ? j.get<std::string>() : j.dump();
}

Json field(const Json &j, const char *key) {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it == j.end() ? Json(nullptr) : *it;
}

// plugins.json as name -> entry; anything malformed is skipped.
std::map<std::string, Json> by_name(const Json &plugins) {
    std::map<std::string, Json> out;
    if (!plugins.is_array()) return out;
    for (const auto &p : plugins) {
        const Json name = field(p, keys::name);
        if (name.is_string()) out[name.get<std::string>()] = p;
    }
    return out;
}

} // namespace

std::vector<std::string> differences(const Json &env_recorded, const Json &plugins_recorded, const Json &env_now,
                                     const Json &plugins_now) {
    std::vector<std::string> out;
    // The working folder only matters through relative paths, which replay runs from anyway.
    for (const char *key : {keys::cdrmix, keys::libtorch, keys::threads, keys::device, keys::cpu_kernels,
                            keys::torch_seed, keys::world_size}) {
        const Json a = field(env_recorded, key), b = field(env_now, key);
        if (a != b) out.push_back(std::string(key) + ": " + shown(a) + " recorded, " + shown(b) + " now");
    }
    const auto recorded = by_name(plugins_recorded), now = by_name(plugins_now);
    for (const auto &[name, r] : recorded) {
        auto it = now.find(name);
        if (it == now.end()) {
            out.push_back("plugin " + name + " (" + shown(field(r, keys::file)) + "): recorded, not loaded now");
            continue;
        }
        const Json &n = it->second;
        if (field(r, keys::crc32c) != field(n, keys::crc32c) || field(r, keys::size) != field(n, keys::size))
            out.push_back("plugin " + name + " (" + shown(field(n, keys::file)) + "): file changed: CRC-32C " +
                          shown(field(r, keys::crc32c)) + ", " + shown(field(r, keys::size)) + " bytes recorded; " +
                          shown(field(n, keys::crc32c)) + ", " + shown(field(n, keys::size)) + " bytes now");
        else if (field(r, keys::version) != field(n, keys::version))
            out.push_back("plugin " + name + ": version " + shown(field(r, keys::version)) + " recorded, " +
                          shown(field(n, keys::version)) + " now");
    }
    for (const auto &[name, n] : now)
        if (!recorded.count(name)) out.push_back("plugin " + name + " (" + shown(field(n, keys::file)) + "): loaded now, not recorded");
    return out;
}

} // namespace cdrmix::run_environment
