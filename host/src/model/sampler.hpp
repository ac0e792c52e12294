// Streaming generation: the prompt runs through the model once (parallel form),
// then one token at a time with the recurrent state carried, so memory per
// generated token stays constant for RWKV layers.
#pragma once

#include "model/model.hpp"

#include <cdrmix/tokenizer.hpp>

#include <functional>
#include <string>

namespace cdrmix {

struct SampleOptions {
    int64_t max_tokens = 200;
    double temperature = 1.0; // 0: greedy
    int64_t top_k = 0;        // 0: off
    double top_p = 1.0;       // 1: off
    uint64_t seed = 0;
};

// Picks the next token id from logits [V] (float) with the options above.
int64_t sample_token(const torch::Tensor &logits, const SampleOptions &opts, torch::Generator &gen);

// Generates text after `prompt`; on_text receives each decoded piece as soon as
// it forms complete UTF-8. Returns the generated text (without the prompt).
std::string generate(Model &model, const Tokenizer &tokenizer, const std::string &prompt, const SampleOptions &opts,
                     const std::function<void(const std::string &)> &on_text = {});

} // namespace cdrmix
