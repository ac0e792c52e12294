// Sparse upcycling (Komatsuzaki et al., 2022): `cdrmix upcycle CHECKPOINT
// --experts E --top-k K -o DIR` turns a dense model's FFNs into MoE layers whose
// experts start as copies of the dense FFN, so a pretrained model continues as
// an MoE. Everything else (embedding, mixers, norms, head, the FFN's token
// shift) is copied unchanged; routers start from their own initialisation.
//
// With noise 0 and a router whose weights over the chosen experts sum to 1
// (topk with normalize, the default), every MoE layer computes exactly what the
// dense FFN did: sum_k w_k f(x) = f(x). Shared experts are copies too, and every
// copy's output matrix is scaled by 1/(S+1), so S shared experts plus the routed
// ones still add up to f(x). noise X multiplies each copied weight by
// (1 + X * N(0,1)), drawn per expert (seeded), to break the symmetry.
#pragma once

#include <cdrmix/registry.hpp>
#include <cdrmix/schema.hpp>

#include <string>

namespace cdrmix {

struct UpcycleOptions {
    std::string checkpoint; // a dense model's checkpoint (folder, run folder, or checkpoints/)
    std::string out;        // the checkpoint folder to create
    int64_t experts = 8, top_k = 2, moe_every = 1, shared_experts = 0;
    std::string router = "topk";
    double noise = 0.0;
    int64_t seed = 0;

    static const Schema &schema();
    static UpcycleOptions from_config(const Config &config);
};

// Returns the new checkpoint folder; a summary line goes to `report`.
std::string upcycle(const UpcycleOptions &options, const Registry &registry, std::string *report = nullptr);

} // namespace cdrmix
