// The FLOP count of `cdrmix bench` row 5 (training_flops_per_token): 6 x the
// matrix weights a token multiplies, the head included, the embedding not, and
// of an MoE's experts only the top_k a token visits.
#include "bench/bench_training.hpp"

#include <gtest/gtest.h>

using cdrmix::Json;

namespace {

double flops_of(const Json &spec) {
    cdrmix::Model model(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    return cdrmix::bench::training_flops_per_token(model);
}

} // namespace

TEST(BenchTraining, FlopsPerTokenCountDenseMatrices) {
    const double C = 32, V = 11;
    const Json spec = {{"vocab_size", 11}, {"hidden_size", 32}, {"num_layers", 2},
                       {"mixer", {{"type", "attention"}, {"num_heads", 2}}},
                       {"ffn", {{"type", "relu2"}, {"expansion", 4}}}};
    // Per layer q, k, v, o (4 C^2) and key, value (2 x 4 C^2); then the head.
    EXPECT_DOUBLE_EQ(flops_of(spec), 6 * (2 * (4 * C * C + 8 * C * C) + V * C));
}

TEST(BenchTraining, FlopsPerTokenCountOnlyTheVisitedExperts) {
    const double C = 32, V = 11, E = 4, k = 2;
    Json spec = {{"vocab_size", 11}, {"hidden_size", 32}, {"num_layers", 1},
                 {"mixer", {{"type", "attention"}, {"num_heads", 2}}},
                 {"moe_every", 1}, {"num_experts", 4}, {"top_k", 2},
                 {"expert", {{"type", "relu2"}, {"expansion", 2}}}};
    // Attention 4 C^2, the router's gate E x C, k of the E experts (2 x 2 C^2 each), the head.
    EXPECT_DOUBLE_EQ(flops_of(spec), 6 * (4 * C * C + E * C + k * 4 * C * C + V * C));
}
