// The README.md model card of an exported Hugging Face folder: YAML front
// matter (license, library_name, tags, pipeline_tag) for the Hub, then what
// a reader needs to judge the model: parameters (total and active per token),
// layers, experts, tokenizer, training data, steps, final train and val loss,
// and the command that trained it. Facts come from the checkpoint (model,
// tokenizer, trainer_state.json, run_config.json) and its run folder's
// metrics.jsonl; a fact that is not recorded is written as "not recorded".
#pragma once

#include "train/checkpoint.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cdrmix {

struct CardFacts {
    std::string name;
    // Front matter, chosen by the exporter.
    std::string license, library_name;
    std::vector<std::string> tags;
    std::string format; // one line: which convention the folder follows and what reads it
    // From the checkpoint.
    int64_t parameters = 0, active_parameters = 0, layers = 0, hidden = 0;
    std::string experts;   // "none (dense)" or the MoE layers' experts and top-k
    std::string tokenizer; // kind and vocabulary size
    std::string data;      // the run's data config, or ""
    std::optional<int64_t> steps;
    std::optional<double> train_loss, val_loss;
    std::string command; // `cdrmix run SCRIPT OVERRIDES...`, or ""
};

// Everything but the front matter and the format line, which the exporter sets.
CardFacts card_facts(const LoadedCheckpoint &checkpoint);
std::string model_card(const CardFacts &facts);

} // namespace cdrmix
