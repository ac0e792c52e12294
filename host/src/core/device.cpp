#include "core/device.hpp"

#include <cdrmix/backend.hpp>
#include <cdrmix/error.hpp>

namespace cdrmix {

c10::Device resolve_device(const Registry &registry, const std::string &name) {
    if (name.empty() || name == "cpu") return c10::Device(c10::DeviceType::CPU);
    const auto colon = name.find(':');
    const std::string backend_name = name.substr(0, colon);
    int index = 0;
    if (colon != std::string::npos) {
        try {
            index = std::stoi(name.substr(colon + 1));
        } catch (const std::exception &) {
            throw Error("--device " + name + ": expected NAME or NAME:INDEX, e.g. cuda:0");
        }
    }
    if (!registry.has(PluginKind::Backend, backend_name))
        throw Error("--device " + name + ": no backend plugin named '" + backend_name + "' (see `cdrmix plugins`)");
    auto backend = registry.create_backend(Config(Json{{"type", backend_name}}, "--device", ""));
    const std::string why = backend->unavailable_reason();
    if (!why.empty()) throw Error("--device " + name + ": backend " + backend_name + " is unusable: " + why);
    if (index < 0 || index >= backend->device_count())
        throw Error("--device " + name + ": device index out of range (" + std::to_string(backend->device_count()) +
                    " device(s))");
    return c10::Device(backend->device_type(), static_cast<c10::DeviceIndex>(index));
}

std::shared_ptr<Backend> backend_of(const Registry &registry, const c10::Device &device) {
    if (device.is_cpu()) return nullptr;
    for (const auto &f : registry.list()) {
        if (f.kind != PluginKind::Backend) continue;
        auto backend = registry.create_backend(Config(Json{{"type", f.name}}, "--device", ""));
        if (backend->device_type() == device.type() && backend->unavailable_reason().empty()) return backend;
    }
    return nullptr;
}

} // namespace cdrmix
