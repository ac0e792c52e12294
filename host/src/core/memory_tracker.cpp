#include "core/memory_tracker.hpp"

#include <c10/core/CPUAllocator.h>

#include <atomic>

namespace cdrmix {

namespace {

std::atomic<int64_t> g_live{0};

struct Allocation {
    c10::DataPtr inner;
    int64_t bytes;
};

// LibTorch keeps the highest-priority CPU allocator; ours must win while installed.
constexpr uint8_t kTrackerPriority = 100;

} // namespace

MemoryTracker::MemoryTracker() : inner_(c10::GetCPUAllocator()) { c10::SetCPUAllocator(this, kTrackerPriority); }

int64_t MemoryTracker::live_bytes() { return g_live.load(); }

MemoryTracker::~MemoryTracker() { c10::SetCPUAllocator(inner_, kTrackerPriority); }

c10::DataPtr MemoryTracker::allocate(size_t n) const {
    c10::DataPtr inner = inner_->allocate(n);
    void *data = inner.get();
    g_live += static_cast<int64_t>(n);
    auto *record = new Allocation{std::move(inner), static_cast<int64_t>(n)};
    return {data, record, &MemoryTracker::release, c10::Device(c10::DeviceType::CPU)};
}

void MemoryTracker::release(void *ctx) {
    auto *record = static_cast<Allocation *>(ctx);
    g_live -= record->bytes;
    delete record;
}

} // namespace cdrmix
