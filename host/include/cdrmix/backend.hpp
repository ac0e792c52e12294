// Backend contract: a compute device, whether it is usable here (and why not),
// memory statistics, synchronisation and its collective communication backend.
// Kernels themselves are registered into PyTorch's dispatcher under cdrmix::
// ops, so the tensor's device picks the implementation.
//
// Threads: every member may be called from any thread, concurrently (a backend
// holds no mutable state of its own). Ownership: the caller owns the backend
// (from the registry's create_backend); results are plain values.
// Errors: only synchronize() throws (cdrmix::Error, when the device is unusable;
// unavailable_reason() says why); memory() reports -1 for what it cannot tell.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/DispatchKey.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix {

struct MemoryStats {
    int64_t used_bytes = -1;  // -1: unknown
    int64_t total_bytes = -1;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual c10::DeviceType device_type() const = 0;
    virtual int64_t device_count() const = 0;
    // Empty when usable; otherwise a one-line reason with a fix.
    virtual std::string unavailable_reason() const = 0;
    virtual MemoryStats memory() const = 0;
    virtual void synchronize() const = 0;
    virtual std::string collective_backend() const = 0; // "gloo", "nccl"
    virtual std::vector<std::string> kernels() const = 0; // cdrmix:: ops implemented for this device
};

// The cdrmix:: ops that have a kernel registered for `key` in PyTorch's
// dispatcher: what a backend's kernels() usually reports. Any thread.
std::vector<std::string> ops_with_kernel(c10::DispatchKey key);

} // namespace cdrmix
