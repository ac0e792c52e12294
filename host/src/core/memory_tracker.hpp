// Counts the bytes of CPU memory LibTorch holds, by wrapping its CPU allocator.
// `cdrmix describe` uses it to measure what a real forward pass keeps alive,
// the tests to compare peaks (activation checkpointing).
#pragma once

#include <cdrmix/torch_compat.hpp>

#include <c10/core/Allocator.h>

#include <cstdint>

namespace cdrmix {

class MemoryTracker final : public c10::Allocator {
public:
    // Installs the tracker as LibTorch's CPU allocator for this object's lifetime.
    MemoryTracker();
    ~MemoryTracker() override;
    MemoryTracker(const MemoryTracker &) = delete;
    MemoryTracker &operator=(const MemoryTracker &) = delete;

    // Bytes allocated through any tracker and not yet freed (tensors may outlive the tracker).
    static int64_t live_bytes();
    // The most live_bytes() has been since the last reset_peak() (or since the first tracker).
    static int64_t peak_bytes();
    // Starts a new peak at the present live_bytes().
    static void reset_peak();

    c10::DataPtr allocate(size_t n) CDRMIX_ALLOCATE_CONST override;
#if CDRMIX_ALLOCATOR_HAS_COPY_DATA
    void copy_data(void *dest, const void *src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif
    c10::DeleterFnPtr raw_deleter() const override { return &MemoryTracker::release; }

private:
    static void release(void *ctx);

    c10::Allocator *inner_;
};

} // namespace cdrmix
