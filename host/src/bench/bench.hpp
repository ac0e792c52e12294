// `cdrmix bench`: speed figures, each against a baseline measured in the same
// run, so a noisy machine still gives honest ratios.
#pragma once

#include <cdrmix/registry.hpp>

namespace cdrmix {

struct BenchOptions {
    bool quick = false; // smaller shapes and fewer repeats
};

// Prints the table to stdout; returns 0.
int run_bench(const Registry &registry, const BenchOptions &options);

} // namespace cdrmix
