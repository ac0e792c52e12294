#include "metrics/metrics.hpp"

#include "metrics/record_fields.hpp"

#include <cdrmix/error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cstdio>

namespace cdrmix {

void MetricsBus::add_sink(std::shared_ptr<MetricsSink> sink) {
    std::lock_guard<std::mutex> lock(mutex_);
    sinks_.push_back(std::move(sink));
}

void MetricsBus::publish(Json record) {
    if (parent_) parent_->stamp(record);
    else stamp(record);
    deliver(record);
    if (parent_) parent_->deliver(record);
}

void MetricsBus::stamp(Json &record) {
    record[fields::time] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (record.value(fields::event, "") == fields::events::step && !record.contains(fields::step::rss_mb)) {
        const double rss = process_rss_mb();
        if (rss >= 0) record[fields::step::rss_mb] = rss;
        if (device_memory_) {
            const MemoryStats m = device_memory_();
            constexpr double kMB = 1024.0 * 1024.0;
            if (m.used_bytes >= 0) record[fields::step::device_mem_mb] = double(m.used_bytes) / kMB;
            if (m.total_bytes >= 0) record[fields::step::device_mem_total_mb] = double(m.total_bytes) / kMB;
        }
    }
}

void MetricsBus::deliver(const Json &record) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &s : sinks_) s->write(record);
}

void MetricsBus::set_device_memory(std::function<MemoryStats()> probe) { device_memory_ = std::move(probe); }

void MetricsBus::finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &s : sinks_) s->finish();
}

JsonlSink::JsonlSink(const std::string &path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(path + ": cannot open for writing: " + std::strerror(errno));
}

JsonlSink::~JsonlSink() {
    if (fd_ >= 0) ::close(fd_);
}

void JsonlSink::write(const Json &record) {
    if (!failed_.empty()) throw MetricsWriteError(failed_);
    const std::string line = record.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    const off_t before = ::lseek(fd_, 0, SEEK_END);
    size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : ENOSPC;
            const bool cut = before >= 0 && ::ftruncate(fd_, before) == 0; // no half line left behind
            failed_ = path_ + ": cannot write the metrics: " + std::strerror(err) +
                      (cut ? "" : " (and a partial last line could not be removed)");
            throw MetricsWriteError(failed_);
        }
        done += size_t(n);
    }
}

void QueueSink::write(const Json &record) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(record);
}

std::vector<Json> QueueSink::drain() {
    std::vector<Json> out;
    std::lock_guard<std::mutex> lock(mutex_);
    out.swap(pending_);
    return out;
}

double process_rss_mb() {
    std::FILE *f = std::fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, resident = 0;
    const int n = std::fscanf(f, "%ld %ld", &size, &resident);
    std::fclose(f);
    if (n != 2) return -1;
    return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

} // namespace cdrmix
