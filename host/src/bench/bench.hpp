// `cdrmix bench`: speed figures, each against a baseline measured in the same
// run, so a noisy machine still gives honest ratios.
#pragma once

#include <cdrmix/registry.hpp>

#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace cdrmix {

struct BenchOptions {
    bool quick = false; // smaller shapes and fewer repeats
    c10::Device device = c10::Device(c10::DeviceType::CPU); // a GPU runs the GPU table instead
    std::vector<std::string> only; // row groups to run (empty: all)
};

// The row groups' names, in table order (for --only).
std::vector<std::string> bench_row_names();

// Prints the table to stdout; returns 0. Throws cdrmix::Error for an unknown --only row.
int run_bench(const Registry &registry, const BenchOptions &options);
// The GPU table (bench_gpu.cpp): WKV kernels at the published anchors' shape.
int run_gpu_bench(const BenchOptions &options);

} // namespace cdrmix
