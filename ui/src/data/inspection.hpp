// The dashboard's routing inspector, as data: a text's routing and the
// experts' specialisation over a sample (the JSON of `cdrmix inspect --json
// [--specialisation]`, host/src/model/routing_inspector.hpp's to_json) read
// into plain structs, and the per-expert views the panels show. No GUI
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

// One expert of one MoE layer over a sample: what it received most.
struct ExpertProfile {
    int64_t slots = 0; // token slots it filled
    std::vector<std::pair<std::string, int64_t>> classes; // (token class, slots), as the JSON names them, most first
    std::vector<std::pair<std::string, int64_t>> top;     // (token text, count), most frequent first
};

struct LayerProfile {
    int64_t layer = 0;                 // model layer index
    std::vector<ExpertProfile> experts; // by expert index
    int64_t slots() const;             // the layer's filled slots, summed over its experts
};

struct Specialisation {
    std::string split; // "val" or "train"
    int64_t tokens = 0, step = -1; // the sample's tokens; the weights' step (-1: not given)
    std::vector<LayerProfile> layers;
    std::vector<std::string> classes; // every token class named, sorted: a class keeps its place (and colour)
    size_t class_index(const std::string &name) const; // its place in classes (classes.size() when absent)
};

// Reads `{"split", "tokens", ["step",] "layers": [{"layer", "experts": [{"expert",
// "tokens", "top": [{"text", "count"}], "classes": {name: count}}]}]}`. Throws
// std::runtime_error naming the field when it is not one (experts in order from 0).
Specialisation parse_specialisation(const nlohmann::json &specialisation);

// A token's text as the panel shows it: newline, tab and space made visible.
std::string visible_token(const std::string &text);

} // namespace cdrmix::ui
