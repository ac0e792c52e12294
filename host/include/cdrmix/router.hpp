// Router contract: given token features [N,C], choose k experts per token and
// their combine weights. Routers never move tokens; the MoE block dispatches.
//
// The MoE layer decides the shape of the decision once ({hidden size, number
// of experts, top_k, layer}) and hands it over in RouterContext; a router
// never reads top_k from its own config, and throws from its factory when it
// cannot honour the context (a top-1 router given top_k 2).
//
// Threads: a router is used by one model, from one thread at a time (the
// trainer's, or a sampler's on its own copy). Ownership: the MoE layer owns
// its router; tensors in a RouterOutput belong to the caller.
// Errors: route() may throw c10::Error for malformed input; configuration
// errors are thrown by the factory as cdrmix::Error.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cdrmix {

struct NamedLoss {
    std::string name;
    torch::Tensor value; // scalar, already scaled by its coefficient
};

struct RouterContext {
    int64_t hidden_size = 0;
    int64_t num_experts = 0;
    int64_t top_k = 0;  // experts per token, decided by the MoE layer (1 <= top_k <= num_experts)
    int64_t layer = 0;
};

// What a router may look at besides the features.
struct RouteInput {
    torch::Tensor token_ids; // [N] int64 token ids (for hash routing), or undefined
    // True while generating token by token: routers whose choice depends on the
    // whole batch (expert choice, Sinkhorn) must fall back to a causal top-k.
    bool decoding = false;
};

struct RouterOutput {
    // [N,k] int64 expert ids; -1 marks an empty slot (the token gets fewer than k
    // experts, e.g. under expert choice or a capacity limit): its weight is ignored.
    torch::Tensor indices;
    torch::Tensor weights; // [N,k] combine weights (differentiable)
    torch::Tensor probs;   // [N,E] routing distribution, for statistics
    std::vector<NamedLoss> losses;
};

// One MoE layer's routing in one forward call, recorded only when the caller
// asks (ForwardContext::record_routing): statistics are computed from these
// on the steps that log them, never inside the forward pass.
struct RoutingRecord {
    int64_t layer = 0;
    int64_t num_experts = 0;
    torch::Tensor indices; // [N,k] int64, -1 for an empty slot (after capacity limits)
    torch::Tensor probs;   // [N,E] routing distribution, detached
    std::vector<NamedLoss> losses; // the router's auxiliary losses, detached
};

// What every MoE layer reports on a logged step (what the dashboard draws).
// The JSON field names are declared once, in the host's step record fields.
struct RouterStats {
    int64_t layer = 0;
    std::vector<int64_t> tokens_per_expert;
    double token_entropy = 0;  // mean per-token routing entropy / log(E), in [0,1]
    double load_entropy = 0;   // entropy of the load distribution / log(E), in [0,1]
    int64_t dropped_tokens = 0;
    int64_t dead_experts = 0;  // experts that received no token
    double load_cv = 0;        // coefficient of variation of tokens per expert
    std::vector<std::pair<std::string, double>> losses;
};

class Router : public torch::nn::Module {
public:
    // x: [N,C] token features. Returns [N,top_k] decisions; auxiliary losses
    // only in training mode.
    virtual RouterOutput route(const torch::Tensor &x, const RouteInput &in) = 0;
    virtual int64_t num_experts() const = 0;
    virtual int64_t top_k() const = 0; // the context's top_k
};

// Auxiliary losses shared by routers (the router decides when to add them).
// Load balance (Switch / Megatron top-k form): alpha * E * sum_i f_i P_i, where
// f_i is the share of filled slots (index >= 0) routed to expert i and P_i the
// mean of probs[:, i]. It equals alpha at perfect balance and grows as routing
// concentrates; gradients flow through probs only (f is a count).
torch::Tensor load_balance_loss(const torch::Tensor &probs, const torch::Tensor &indices, int64_t num_experts,
                                double alpha);
// Router z-loss (ST-MoE): coef * mean over tokens of logsumexp(logits)^2; keeps
// logits small so the softmax stays in float32's comfortable range.
torch::Tensor router_z_loss(const torch::Tensor &logits, double coef);

// Statistics per layer from the records of one step (records of the same
// layer, e.g. from several micro-batches, are pooled). Computed on the records'
// device with one transfer to the host for the whole step. Slots with index -1
// are not counted; a token with no filled slot is a dropped token. Layers come
// out in order of first appearance.
std::vector<RouterStats> compute_router_stats(const std::vector<RoutingRecord> &records);
// The same over several processes' records: the statistics are sums (counts,
// summed entropies, loss sums and record counts), and `sum_over_ranks` adds a
// float64 CPU tensor of them over the processes in place, so every process
// gets the statistics of all their tokens. Every process must hold records of
// the same layers (the same model).
std::vector<RouterStats> compute_router_stats(const std::vector<RoutingRecord> &records,
                                              const std::function<void(torch::Tensor &)> &sum_over_ranks);

} // namespace cdrmix
