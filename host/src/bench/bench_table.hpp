// Pieces shared by the rows of `cdrmix bench`: timing, the printed table, and
// the figures one row hands to another (the GEMM peak, training consumption).
#pragma once

#include "bench/bench.hpp"

#include <filesystem>
#include <functional>
#include <string>
#include <utility>

namespace cdrmix::bench {

// Median seconds of `repeats` runs after one warm-up run.
double median_seconds(const std::function<void()> &f, int repeats);

// printf-style formatting of one number.
std::string format(const char *fmt, double value);

// One line per figure: name, figure, the baseline measured in the same run, ratio.
void print_row(const std::string &name, const std::string &figure, const std::string &baseline,
               const std::string &ratio);

// State of one `cdrmix bench` invocation.
struct Run {
    Run(const Registry &r, BenchOptions o) : registry(r), options(std::move(o)) {}
    const Registry &registry;
    BenchOptions options;
    int repeats = 5;
    double gemm_gflops = 0;          // row 1: the limit the other rows are judged against
    double train_tokens_per_s = 0;   // the training loop's consumption, for the data row
    std::string train_tokens_label;  // which training row measured it
};

// The row groups, in table order (each file of this folder holds one).
void gemm_row(Run &run);       // 1
void wkv_rows(Run &run);       // 2
void moe_row(Run &run);        // 3
void block_rows(Run &run);     // every registered block against an MLP
void nanogpt_row(Run &run);    // 4: training tokens/s against Python PyTorch (bench_training.cpp)
void mfu_row(Run &run);        // 5: model FLOPs utilisation of cdrmix-small training
void generation_rows(Run &run); // 6: streaming generation, RWKV-7 beside attention
void data_rows(Run &run);       // 7: data pipeline against training's consumption
void gui_row(Run &run);         // 8: training with the dashboard open against headless
void dist_rows(Run &run);       // 9: data-parallel weak scaling and all-reduce bandwidth (bench_dist.cpp)
void lua_router_row(Run &run);  // 10: the Lua top-k router against the C++ one in training (bench_training.cpp)
void checkpoint_row(Run &run);  // 11: activation checkpointing: training tokens/s and peak memory (bench_training.cpp)
void bf16_weights_row(Run &run); // 12: bf16 weights with float32 masters: training tokens/s and peak memory

// A file of the source tree: $CDRMIX_SOURCE_DIR, else the tree this binary was built from.
std::filesystem::path source_file(const std::string &relative);

} // namespace cdrmix::bench
