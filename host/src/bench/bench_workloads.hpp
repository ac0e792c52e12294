// What rows 6-8 of `cdrmix bench` run: a small model of either mixer, a corpus
// written to a temporary folder, and short training runs of the stock Trainer.
#pragma once

#include "bench/bench_table.hpp"
#include "metrics/metrics.hpp"
#include "model/model.hpp"

#include <cdrmix/data_source.hpp>

#include <functional>
#include <memory>
#include <string>

namespace cdrmix::bench {

// cdrmix-small's shape (configs/models/cdrmix-small.yaml: 4 layers of 128, MoE
// every second layer) with `mixer` as every layer's time mixer.
std::shared_ptr<Model> small_model(const Registry &registry, const Json &mixer, int64_t vocab_size);
Json rwkv7_mixer();
Json attention_mixer(); // the same width in heads of 64

// A folder under the system's temporary directory, removed with everything in it.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    std::string file(const std::string &name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Writes `bytes` of English-like text (seeded: the same every run) to path, in
// paragraphs of lines; ASCII only, so every character is one char-tokenizer token.
void write_corpus(const std::string &path, int64_t bytes);

// Training speed from the Trainer's step records, the first step left out
// (allocation and first-call costs): tokens over the summed step times.
struct TrainingRate {
    int64_t steps = 0;
    double tokens_per_s = 0;
};

struct TrainingRun {
    std::shared_ptr<Model> model;
    std::shared_ptr<DataSource> data;
    int64_t steps = 10, batch_size = 16, seq_len = 256;
    // Extra sinks for the run's records (the dashboard's queue).
    std::vector<std::shared_ptr<MetricsSink>> sinks;
};

// Trains run.model for run.steps with the stock Trainer (no checkpoints, one
// eval batch at the end, outside the timed steps).
TrainingRate train(const TrainingRun &run);

} // namespace cdrmix::bench
