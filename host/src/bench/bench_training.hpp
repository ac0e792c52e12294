// Rows 4 and 5 of `cdrmix bench`: end-to-end training through the stock
// Trainer (the step `cdrmix run` takes), against the same GPT written in
// Python PyTorch on the same LibTorch (python/nanogpt.py), and as model FLOPs
// utilisation of cdrmix-small against the GEMM peak of row 1.
#pragma once

#include "bench/bench_table.hpp"
#include "model/model.hpp"

#include <cdrmix/config.hpp>
#include <cdrmix/registry.hpp>

#include <cstdint>

namespace cdrmix::bench {

struct TrainingShape {
    int64_t vocab = 65, batch = 12, seq = 64;
    int warmup_steps = 3; // run first, not timed (thread pools, allocator, caches)
    int timed_steps = 20;
    ActivationCheckpointing checkpointing; // train.checkpoint_activations
    std::string weights_dtype = "float32"; // train.weights_dtype
};

struct TrainingFigure {
    double step_seconds = 0; // median over the timed steps
    double tokens_per_s = 0; // batch * seq / step_seconds
    int64_t parameters = 0;
    double flops_per_token = 0; // training_flops_per_token of the model
    // The most CPU bytes live at once over the run, above those live before it
    // (model, AdamW state and the steps' tensors), when a MemoryTracker is installed; else 0.
    int64_t peak_bytes = 0;
};

// Builds model_spec (vocab_size set from shape) through the registry and trains
// it with the stock Trainer on uniformly random tokens held in memory (a window
// source, so reading data costs next to nothing). Step times are those the
// Trainer reports, which leave out its end-of-run evaluation.
TrainingFigure measure_training(const Registry &registry, Json model_spec, const TrainingShape &shape);

// Training FLOPs per token (forward + backward), as docs/benchmarks.md states:
// 6 x the matrix weights a token multiplies (the head's included, the
// embedding's lookup not; of an MoE's experts only the top_k a token visits)
// plus the WKV recurrence of each RWKV-6/7 mixer (wkv_flops, forward and
// backward). Attention's score and value products are not counted.
double training_flops_per_token(const Model &model);

} // namespace cdrmix::bench
