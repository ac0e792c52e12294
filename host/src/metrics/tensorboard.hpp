// TensorBoard event files: every run folder also holds
// events.out.tfevents.<unix time>.<host>.cdrmix, so `tensorboard --logdir runs`
// shows a run beside the dashboard. One sink translates the run's records:
//   scalars  train/loss, train/aux_loss, train/lr, train/grad_norm, train/tokens_per_s,
//            val/loss, val/perplexity, and per MoE layer moe/layerN/{load_cv,
//            token_entropy, load_entropy, dropped_tokens, dead_experts, <aux loss>}
//   text     samples (the trainer's periodic generations)
// The file is TFRecord framing (length, masked CRC32C of the length, data,
// masked CRC32C of the data) around Event protocol buffers
// (tensorflow/core/util/event.proto, summary.proto), encoded here: the few
// fields TensorBoard reads need no protobuf library.
//
// Records are appended and flushed one by one (a crash leaves at most one
// partial record at the end, which readers skip); a failed write throws
// cdrmix::Error naming the file.
#pragma once

#include "metrics/metrics.hpp"

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>

namespace cdrmix {

// TFRecord's masking of a CRC-32C (core/files.hpp).
uint32_t masked_crc32c(std::string_view bytes);

// One TFRecord: the framing around `data`.
std::string tfrecord(std::string_view data);

class TensorBoardSink : public MetricsSink {
public:
    // Creates <folder>/events.out.tfevents.<time>.<host>.cdrmix with its file_version event.
    explicit TensorBoardSink(const std::string &folder);
    void write(const Json &record) override;
    const std::string &path() const { return path_; }

private:
    void append(const std::string &event);

    std::string path_;
    std::ofstream out_;
};

} // namespace cdrmix
