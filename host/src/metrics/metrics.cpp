#include "metrics/metrics.hpp"

#include <cdrmix/error.hpp>

#include <chrono>

namespace cdrmix {

void MetricsBus::add_sink(std::shared_ptr<MetricsSink> sink) {
    std::lock_guard<std::mutex> lock(mutex_);
    sinks_.push_back(std::move(sink));
}

void MetricsBus::publish(Json record) {
    record["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &s : sinks_) s->write(record);
}

void MetricsBus::finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &s : sinks_) s->finish();
}

JsonlSink::JsonlSink(const std::string &path) : out_(path, std::ios::app) {
    if (!out_) throw Error(path + ": cannot open for writing");
}

void JsonlSink::write(const Json &record) {
    out_ << record.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
    out_.flush();
}

} // namespace cdrmix
