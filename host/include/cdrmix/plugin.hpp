// Header-only C++ glue that turns one function into a cdrmix plugin:
//
//   #include <cdrmix/plugin.hpp>
//   CDRMIX_PLUGIN("my_router", "1.0.0", "What it does") {
//       registry.add_router("my_router", "What it does",
//           [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) {
//               return std::make_shared<MyRouter>(c, ctx);
//           });
//   }
//
// The macro defines the exported entry symbol with this build's fingerprint
// (ABI version, LibTorch version, C++ ABI) and a register function that never
// lets an exception cross the C boundary.
#pragma once

#include <cdrmix/plugin_abi.h>
#include <cdrmix/registry.hpp>

#include <torch/version.h>

#include <cstdio>
#include <exception>
#include <string>

namespace cdrmix::detail {

template <void (*Register)(Registry &)>
int register_trampoline(cdrmix_registry_t *registry, char *err, size_t err_size) {
    try {
        Register(*reinterpret_cast<Registry *>(registry));
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(err, err_size, "%s", e.what());
    } catch (...) {
        std::snprintf(err, err_size, "register function threw a non-standard exception");
    }
    return 1;
}

} // namespace cdrmix::detail

// The fingerprint of the current translation unit's toolchain.
#define CDRMIX_BUILD_INFO                                                                          \
    {                                                                                              \
        TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, _GLIBCXX_USE_CXX11_ABI,                          \
            static_cast<uint32_t>(sizeof(at::Tensor)), static_cast<uint32_t>(sizeof(std::string))  \
    }

#define CDRMIX_PLUGIN(NAME, VERSION, DESCRIPTION)                                                  \
    static void cdrmix_plugin_register(::cdrmix::Registry &registry);                              \
    extern "C" CDRMIX_EXPORT const cdrmix_plugin_entry_t *cdrmix_plugin_entry(void) {              \
        static const cdrmix_plugin_entry_t entry = {                                               \
            CDRMIX_ABI_VERSION_MAJOR, CDRMIX_ABI_VERSION_MINOR, NAME, VERSION, DESCRIPTION,        \
            CDRMIX_BUILD_INFO, &::cdrmix::detail::register_trampoline<cdrmix_plugin_register>};    \
        return &entry;                                                                             \
    }                                                                                              \
    static void cdrmix_plugin_register([[maybe_unused]] ::cdrmix::Registry &registry)
