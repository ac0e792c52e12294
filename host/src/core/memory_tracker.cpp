#include "core/memory_tracker.hpp"

#include <c10/core/CPUAllocator.h>

#include <cdrmix/error.hpp>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace cdrmix {

namespace {

// Some LibTorch paths (resizing storage) require a DataPtr whose context is its
// data pointer, so sizes are kept in a table keyed by the pointer instead.
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
std::mutex g_mutex;
std::unordered_map<void *, int64_t> g_sizes;
c10::DeleterFnPtr g_inner_deleter = nullptr;

// LibTorch keeps the highest-priority CPU allocator; ours must win while installed.
constexpr uint8_t kTrackerPriority = 100;

} // namespace

MemoryTracker::MemoryTracker() : inner_(c10::GetCPUAllocator()) {
    g_inner_deleter = inner_->raw_deleter();
    if (!g_inner_deleter) throw Error("memory tracker: LibTorch's CPU allocator has no raw deleter");
    c10::SetCPUAllocator(this, kTrackerPriority);
}

int64_t MemoryTracker::live_bytes() { return g_live.load(); }

int64_t MemoryTracker::peak_bytes() { return g_peak.load(); }

void MemoryTracker::reset_peak() { g_peak = g_live.load(); }

MemoryTracker::~MemoryTracker() { c10::SetCPUAllocator(inner_, kTrackerPriority); }

c10::DataPtr MemoryTracker::allocate(size_t n) CDRMIX_ALLOCATE_CONST {
    c10::DataPtr inner = inner_->allocate(n);
    void *data = inner.release_context(); // the default CPU allocator's context is the data pointer
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_sizes[data] = static_cast<int64_t>(n);
    }
    const int64_t live = g_live += static_cast<int64_t>(n);
    for (int64_t peak = g_peak.load(); live > peak && !g_peak.compare_exchange_weak(peak, live);) {
    }
    return {data, data, &MemoryTracker::release, c10::Device(c10::DeviceType::CPU)};
}

void MemoryTracker::release(void *data) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        auto it = g_sizes.find(data);
        if (it != g_sizes.end()) {
            g_live -= it->second;
            g_sizes.erase(it);
        }
    }
    g_inner_deleter(data);
}

} // namespace cdrmix
