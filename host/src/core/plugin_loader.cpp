#include "core/plugin_loader.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/plugin.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace cdrmix {

std::string executable_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? std::string(".") : exe.parent_path().string();
}

std::vector<std::string> PluginLoader::search_path(const std::vector<std::string> &extra_dirs) {
    std::vector<std::string> dirs;
    const fs::path exe_dir = executable_dir();
    // build tree: build/bin/cdrmix -> build/plugins; install: bin/cdrmix -> lib/cdrmix/plugins
    for (const fs::path &own : {exe_dir / ".." / "plugins", exe_dir / ".." / "lib" / "cdrmix" / "plugins"}) {
        if (fs::is_directory(own)) {
            dirs.push_back(fs::weakly_canonical(own).string());
            break;
        }
    }
    if (const char *env = std::getenv("CDRMIX_PLUGIN_PATH")) {
        std::stringstream ss(env);
        std::string item;
        while (std::getline(ss, item, ':'))
            if (!item.empty()) dirs.push_back(item);
    }
    dirs.insert(dirs.end(), extra_dirs.begin(), extra_dirs.end());
    return dirs;
}

void PluginLoader::load_all(const std::vector<std::string> &dirs) {
    std::vector<std::string> files;
    for (const auto &dir : dirs) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            const bool file = fs::exists(dir, ec);
            problems_.push_back({dir,
                                 "plugin folder " + dir + (file ? " is a file, not a folder" : " does not exist"),
                                 file ? "--plugin-path and $CDRMIX_PLUGIN_PATH name folders: put the .so in one"
                                      : "check $CDRMIX_PLUGIN_PATH and --plugin-path"});
            continue;
        }
        std::vector<std::string> here;
        for (const auto &entry : fs::directory_iterator(dir, ec))
            if (entry.path().extension() == ".so") here.push_back(entry.path().string());
        std::sort(here.begin(), here.end()); // deterministic order, so "first wins" is reproducible
        files.insert(files.end(), here.begin(), here.end());
    }
    for (const auto &[file, verdict] : probe_new(files)) load_probed(file, verdict);
}

void PluginLoader::load_directory(const std::string &dir) { load_all({dir}); }

bool PluginLoader::load_file(const std::string &path) {
    const auto fresh = probe_new({path});
    return fresh.empty() || load_probed(fresh[0].first, fresh[0].second);
}

std::vector<std::pair<std::string, ProbeVerdict>> PluginLoader::probe_new(const std::vector<std::string> &files) {
    std::vector<std::string> fresh;
    for (const auto &f : files) {
        std::error_code ec;
        const std::string canonical = fs::weakly_canonical(f, ec).string();
        if (std::find(seen_.begin(), seen_.end(), canonical) != seen_.end()) continue;
        seen_.push_back(canonical);
        fresh.push_back(f);
    }
    std::map<std::string, ProbeVerdict> verdicts;
    if (probe_ && !fresh.empty()) {
        try {
            verdicts = probe_->check(fresh);
        } catch (const Error &e) {
            problems_.push_back({"", std::string(e.what()) + "; plugins are loaded without probing",
                                 "reinstall cdrmix (cdrmix-plugin-probe belongs beside the cdrmix program)"});
        }
        for (const auto &w : probe_->warnings()) problems_.push_back({"", w, "check the cache folder's permissions"});
    }
    std::vector<std::pair<std::string, ProbeVerdict>> out;
    for (const auto &f : fresh) out.emplace_back(f, verdicts.count(f) ? verdicts[f] : ProbeVerdict{});
    return out;
}

bool PluginLoader::load_probed(const std::string &path, const ProbeVerdict &verdict) {
    if (!verdict.safe)
        return refuse(path, verdict.why + " in a probe process; not loaded",
                      "fix or remove the plugin (it is probed again when the file changes)");
    return load_unprobed(path);
}

bool PluginLoader::refuse(const std::string &file, const std::string &message, const std::string &hint) {
    problems_.push_back({file, "plugin " + file + ": " + message, hint});
    return false;
}

namespace {

std::string torch_version(uint32_t major, uint32_t minor) { return std::to_string(major) + "." + std::to_string(minor); }

const char *single_line(const char *s) { return s ? s : "(no message)"; }

} // namespace

bool PluginLoader::load_unprobed(const std::string &path) {
    // Plugins are never closed: their factories, kernels and threads may outlive any unload point.
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        std::string why = single_line(dlerror());
        return refuse(path, "cannot be loaded: " + why,
                      why.find("undefined symbol") != std::string::npos
                          ? "rebuild it against this SDK and LibTorch (find_package(cdrmix))"
                          : "is it a shared library for this machine?");
    }
    auto entry_fn = reinterpret_cast<cdrmix_plugin_entry_fn>(dlsym(handle, CDRMIX_PLUGIN_ENTRY_SYMBOL));
    if (!entry_fn)
        return refuse(path, std::string("not a cdrmix plugin (no ") + CDRMIX_PLUGIN_ENTRY_SYMBOL + " symbol)",
                      "remove it from the plugin folder, or define it with CDRMIX_PLUGIN()");
    const cdrmix_plugin_entry_t *entry = entry_fn();
    if (!entry) return refuse(path, "entry point returned no descriptor", "fix the plugin's entry point");

    const std::string rebuild = "rebuild the plugin against this host's SDK (find_package(cdrmix))";
    if (entry->abi_major != CDRMIX_ABI_VERSION_MAJOR || entry->abi_minor > CDRMIX_ABI_VERSION_MINOR) {
        return refuse(path,
                      "built for plugin ABI " + std::to_string(entry->abi_major) + "." + std::to_string(entry->abi_minor) +
                          ", host has " + std::to_string(CDRMIX_ABI_VERSION_MAJOR) + "." +
                          std::to_string(CDRMIX_ABI_VERSION_MINOR),
                      rebuild);
    }
    const cdrmix_build_info_t host = CDRMIX_BUILD_INFO;
    const cdrmix_build_info_t &b = entry->build;
    if (b.torch_major != host.torch_major || b.torch_minor != host.torch_minor)
        return refuse(path,
                      "built for LibTorch " + torch_version(b.torch_major, b.torch_minor) + ", host has LibTorch " +
                          torch_version(host.torch_major, host.torch_minor),
                      rebuild);
    if (b.cxx11_abi != host.cxx11_abi)
        return refuse(path,
                      "built with _GLIBCXX_USE_CXX11_ABI=" + std::to_string(b.cxx11_abi) + ", host has " +
                          std::to_string(host.cxx11_abi),
                      rebuild);
    if (b.sizeof_tensor != host.sizeof_tensor || b.sizeof_string != host.sizeof_string)
        return refuse(path, "C++ object layout differs from the host's (sizeof at::Tensor / std::string)", rebuild);
    if (!entry->register_plugin) return refuse(path, "descriptor has no register function", "fix the plugin");

    const std::string name = single_line(entry->name), version = single_line(entry->version);
    registry_.begin_plugin(name, version, path);
    char err[512] = {0};
    if (entry->register_plugin(reinterpret_cast<cdrmix_registry_t *>(&registry_), err, sizeof(err)) != 0) {
        registry_.abort_plugin();
        return refuse(path, "register function failed: " + std::string(err), "see the plugin's documentation");
    }
    try {
        registry_.commit_plugin();
    } catch (const Error &e) {
        return refuse(path, e.what(), "remove one of the two plugins from the search path");
    }
    loaded_.push_back({name, version, single_line(entry->description), path});
    return true;
}

} // namespace cdrmix
