// The metrics bus: the training thread publishes one JSON record per event
// (step, eval, checkpoint, sample, log); sinks (the terminal, metrics.jsonl,
// the dashboard's queue) consume them.
#pragma once

#include <cdrmix/backend.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/error.hpp>

#include <functional>

#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cdrmix {

class MetricsSink {
public:
    virtual ~MetricsSink() = default;
    virtual void write(const Json &record) = 0;
    virtual void finish() {}
};

class MetricsBus {
public:
    // parent: a bus whose sinks also receive every record (a run's bus inside
    // the script's, which holds the terminal and the dashboard). It must outlive this one.
    explicit MetricsBus(MetricsBus *parent = nullptr) : parent_(parent) {}
    void add_sink(std::shared_ptr<MetricsSink> sink);
    // Every record gets "event" set by the caller and "time" (unix seconds) added
    // here; step records also get "rss_mb" (the process's resident memory) and,
    // with a device memory probe, "device_mem_mb" and "device_mem_total_mb"
    // (a child bus uses its parent's probe).
    void publish(Json record);
    // Finishes this bus's own sinks (not the parent's).
    void finish();
    // Where the models live on a GPU: its memory in use, asked once per step
    // record (a probe reporting -1 adds nothing).
    void set_device_memory(std::function<MemoryStats()> probe);

private:
    void stamp(Json &record);
    void deliver(const Json &record);

    MetricsBus *parent_ = nullptr;
    std::function<MemoryStats()> device_memory_;
    std::mutex mutex_;
    std::vector<std::shared_ptr<MetricsSink>> sinks_;
};

// Appends one JSON object per line, flushed per record so a reader (or a crash) sees whole lines.
// A metrics file could not be written (a full disk, an I/O error). The run
// cannot go on without losing records: the trainer stops at once.
class MetricsWriteError : public Error {
public:
    using Error::Error;
};

// Appends one JSON line per record. Each line goes out in one write; a write
// that fails or falls short is cut back off the file (no half line is left)
// and throws MetricsWriteError naming the file, as does every write after it.
class JsonlSink : public MetricsSink {
public:
    explicit JsonlSink(const std::string &path);
    ~JsonlSink() override;
    JsonlSink(const JsonlSink &) = delete;
    JsonlSink &operator=(const JsonlSink &) = delete;
    void write(const Json &record) override;

private:
    std::string path_;
    int fd_ = -1;
    std::string failed_; // the first failure, repeated by every later write
};

// For a reader on another thread (the dashboard): write() only appends under a
// short lock, so the training thread never waits for the reader; the reader
// takes everything new with drain().
class QueueSink : public MetricsSink {
public:
    void write(const Json &record) override;
    std::vector<Json> drain();

private:
    std::mutex mutex_;
    std::vector<Json> pending_;
};

// Resident memory of this process in MB (from /proc/self/statm); -1 if unknown.
double process_rss_mb();

} // namespace cdrmix
