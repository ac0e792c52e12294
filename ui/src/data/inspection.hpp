// The dashboard's routing inspector, as data: a text's routing (the JSON of
// `cdrmix inspect --json`, host/src/model/routing_inspector.hpp's to_json)
// read into plain structs, and the per-expert views the panel shows. No GUI
// dependency, so it is unit-tested without a window.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cdrmix::ui {

struct InspectedChoice {
    int64_t expert = 0;
    double prob = 0;
};

struct InspectedToken {
    int64_t id = 0;
    std::string text;
    std::vector<std::vector<InspectedChoice>> layers; // per MoE layer, the filled slots (top choice first)
};

struct Inspection {
    std::vector<int64_t> layers; // model layer index of each MoE layer
    int64_t num_experts = 0;
    std::vector<InspectedToken> tokens;

    // The expert that took the largest share of token t in MoE layer `layer` (-1: the token was dropped there).
    int64_t top_expert(size_t token, size_t layer) const;
    // The text's tokens that `expert` received in MoE layer `layer`, most often first
    // (ties: first seen first), with their counts.
    std::vector<std::pair<std::string, int64_t>> expert_tokens(size_t layer, int64_t expert) const;
};

// Throws std::runtime_error naming the field when the JSON is not an inspection
// (at least one MoE layer, every token routed in each, experts in range).
Inspection parse_inspection(const nlohmann::json &routing);

// A token's text as the panel shows it: newline, tab and space made visible.
std::string visible_token(const std::string &text);

} // namespace cdrmix::ui
