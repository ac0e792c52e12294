// `cdrmix describe`: what a model spec costs, computed from the real modules.
// Parameters are counted on real blocks built at full width, one distinct layer
// at a time (layers with the same configuration share a measurement; layer 0 is
// measured on its own because RWKV-7's first layer has a different shape).
// Activation memory is measured, not modelled: the bytes a real forward pass
// keeps alive for backward (batch 1, sequence lengths 32, 64, 128), fitted
// exactly by a quadratic in the sequence length (attention scores grow with
// T^2, everything else linearly) and scaled by the batch size. A layer under
// activation checkpointing is measured the same way through the checkpoint
// node (what it keeps: its output, the next layer's input); backward then
// recomputes one checkpointed layer at a time, when the later layers' are
// freed, so the estimate is the larger of the forward pass's end and each
// such moment.
//
// With a budget the report says whether the total fits and, when it does not,
// what would: activation checkpointing, the largest batch that fits (with and
// without it), or that the weights, gradients and AdamW state alone exceed it.
//
// Per rank (data / expert parallel, ZeRO-1): dense parameters are replicated on
// every rank; each MoE layer's routed experts are split evenly over the ep ranks
// of an expert-parallel group. Gradients follow the parameters held; AdamW state
// too, unless sharded over the replicas of what a rank holds (dense: dp ranks,
// one expert shard: dp/ep ranks). Activations are per rank at the same per-rank
// batch; all-to-all send/receive buffers are not modelled.
#pragma once

#include "model/model.hpp"

#include <cdrmix/config.hpp>

#include <string>

namespace cdrmix {

struct DescribeOptions {
    int64_t batch_size = 1;
    int64_t seq_len = 0;          // 0: the spec's seq_length, else 1024
    std::string dtype = "float32"; // float32 | bfloat16 | float16: bytes per weight and activation
    bool per_rank = false;         // add the per-rank section (the caller asked about dp, ep or sharding)
    int64_t dp = 1;                // data-parallel world size: ranks in total
    int64_t ep = 1;                // expert-parallel degree: divides dp and every MoE layer's expert count
    bool shard_optimizer = false;  // ZeRO-1: AdamW state divided over the replicas of each parameter
    bool expert_at_a_time = false; // train.expert_at_a_time: gradients and AdamW state of one routed expert per MoE layer
    ActivationCheckpointing checkpointing; // what the activation figure assumes (train.checkpoint_activations)
    double budget_bytes = 0;               // > 0: whether the total fits in this many bytes, and if not what would
    // With budget_bytes: give up as soon as the parameters counted so far need
    // more than the budget for weights, gradients and AdamW state alone, before
    // building and measuring the rest. The report is then only {name, budget:
    // {bytes, fits: false}}: the cheap answer a search over presets needs.
    bool stop_when_over_budget = false;
};

// A size such as "18GiB", "512 MiB", "2.5GB" or "1000000" (bytes) in bytes:
// KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB of 1000. Throws cdrmix::Error,
// one line naming `what` (the option) and the text.
double parse_byte_size(const std::string &text, const std::string &what);

// Returns a JSON report (parameters, per-layer kinds, memory in bytes).
Json describe_model(const ModelSpec &spec, const Registry &registry, const DescribeOptions &options);
// The report as an aligned text table (with the budget's verdict and advice when it has one).
std::string format_description(const Json &report);

} // namespace cdrmix
