// The metrics bus's additions to step records: process RSS always, device
// memory when a probe is set (what the dashboard's memory panel plots on a GPU).
#include "test_util.hpp"

#include "core/device.hpp"
#include "metrics/metrics.hpp"

#include <cdrmix/registry.hpp>

namespace {

std::vector<cdrmix::Json> publish(cdrmix::MetricsBus &bus, std::vector<cdrmix::Json> records) {
    auto queue = std::make_shared<cdrmix::QueueSink>();
    bus.add_sink(queue);
    for (auto &r : records) bus.publish(std::move(r));
    return queue->drain();
}

} // namespace

TEST(MetricsBus, StepRecordsCarryDeviceMemoryFromTheProbe) {
    cdrmix::MetricsBus bus;
    int calls = 0;
    bus.set_device_memory([&] {
        ++calls;
        return cdrmix::MemoryStats{3 * 1024 * 1024, 80LL * 1024 * 1024 * 1024};
    });
    auto out = publish(bus, {{{"event", "step"}, {"step", 1}}, {{"event", "eval"}, {"step", 1}}});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_DOUBLE_EQ(out[0].at("device_mem_mb").get<double>(), 3.0);
    EXPECT_DOUBLE_EQ(out[0].at("device_mem_total_mb").get<double>(), 80.0 * 1024);
    EXPECT_GT(out[0].at("rss_mb").get<double>(), 0.0);
    EXPECT_FALSE(out[1].contains("device_mem_mb")) << "only step records are measured";
    EXPECT_EQ(calls, 1);
}

TEST(MetricsBus, UnknownDeviceMemoryAddsNothing) {
    cdrmix::MetricsBus bus;
    bus.set_device_memory([] { return cdrmix::MemoryStats{}; });
    auto out = publish(bus, {{{"event", "step"}, {"step", 1}}});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_FALSE(out[0].contains("device_mem_mb"));
    EXPECT_FALSE(out[0].contains("device_mem_total_mb"));
}

TEST(MetricsBus, TheCpuHasNoDeviceBackend) {
    EXPECT_EQ(cdrmix::backend_of(cdrmix::Registry::global(), c10::Device(c10::DeviceType::CPU)), nullptr);
}
