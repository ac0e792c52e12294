/*
 * cdrmix plugin ABI: the C envelope every plugin exports.
 *
 * A plugin is a shared library that exports exactly one C function,
 * `cdrmix_plugin_entry`, returning a pointer to a static, immutable
 * cdrmix_plugin_entry_t. The host reads the descriptor *before* touching any
 * C++ inside the plugin: the ABI version and the LibTorch / C++ ABI the plugin
 * was built with must match the host's, or the plugin is refused with a
 * one-line reason naming the file and both versions.
 *
 * The payload behind `register_plugin` is C++ (LibTorch modules and tensors
 * have no C ABI), which is why the build fingerprint below must match exactly.
 *
 * Plugin authors do not fill this struct by hand: CDRMIX_PLUGIN() in
 * <cdrmix/plugin.hpp> does it.
 */
#ifndef CDRMIX_PLUGIN_ABI_H
#define CDRMIX_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Major: incompatible layout or semantics change; the host refuses any other major.
 * Minor: backwards-compatible additions; the host refuses plugins newer than itself. */
/* 2: factories are registered with a Schema of their keys; RouterContext carries
 * top_k; BlockContext carries the registry; routing is recorded per call.
 * 2.1: BlockContext carries the expert group (expert parallelism) at its end. */
#define CDRMIX_ABI_VERSION_MAJOR 2
#define CDRMIX_ABI_VERSION_MINOR 1

/* Name of the one exported symbol. */
#define CDRMIX_PLUGIN_ENTRY_SYMBOL "cdrmix_plugin_entry"

#if defined(_WIN32)
#define CDRMIX_EXPORT __declspec(dllexport)
#else
#define CDRMIX_EXPORT __attribute__((visibility("default")))
#endif

/* The toolchain fingerprint a plugin was compiled with. Any difference from the
 * host means C++ objects cannot safely cross the boundary. */
typedef struct cdrmix_build_info {
    uint32_t torch_major;   /* TORCH_VERSION_MAJOR */
    uint32_t torch_minor;   /* TORCH_VERSION_MINOR */
    int32_t cxx11_abi;      /* _GLIBCXX_USE_CXX11_ABI: 0 or 1 */
    uint32_t sizeof_tensor; /* sizeof(at::Tensor): cheap layout probe (ImGui's CHECKVERSION idea) */
    uint32_t sizeof_string; /* sizeof(std::string) */
} cdrmix_build_info_t;

/* Opaque: the host's registry. Plugins reach it through cdrmix::Registry. */
typedef struct cdrmix_registry cdrmix_registry_t;

typedef struct cdrmix_plugin_entry {
    uint32_t abi_major; /* CDRMIX_ABI_VERSION_MAJOR at build time */
    uint32_t abi_minor; /* CDRMIX_ABI_VERSION_MINOR at build time */
    const char *name;        /* short plugin name, e.g. "topk"; static storage */
    const char *version;     /* plugin version string, e.g. "1.0.0"; static storage */
    const char *description; /* one line; static storage */
    cdrmix_build_info_t build;

    /* Adds the plugin's factories to `registry`.
     * [main-thread] Called once per process, after the checks above passed.
     * Returns 0 on success. On failure returns non-zero and writes a NUL-terminated
     * one-line reason into err (at most err_size bytes); nothing it registered is kept.
     * Must not throw: the C++ glue catches everything. */
    int (*register_plugin)(cdrmix_registry_t *registry, char *err, size_t err_size);
} cdrmix_plugin_entry_t;

/* The signature of the exported symbol. The returned pointer is owned by the
 * plugin and valid for as long as the library stays loaded (plugins are never unloaded). */
typedef const cdrmix_plugin_entry_t *(*cdrmix_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* CDRMIX_PLUGIN_ABI_H */
