// `--device NAME`: which compute device the models of a run live on. CPU needs
// nothing; any other name goes through its backend plugin, so an unusable
// device fails at once with the backend's own reason instead of mid-run.
#pragma once

#include <cdrmix/backend.hpp>
#include <cdrmix/registry.hpp>

#include <c10/core/Device.h>

#include <memory>
#include <string>

namespace cdrmix {

// "cpu", "cuda", "cuda:1", "rocm", "tenstorrent": throws cdrmix::Error naming the
// backend and why it cannot be used.
c10::Device resolve_device(const Registry &registry, const std::string &name);

// The usable backend plugin serving `device` (for its memory statistics), or
// null for the CPU or when none is found.
std::shared_ptr<Backend> backend_of(const Registry &registry, const c10::Device &device);

} // namespace cdrmix
