// Streaming generation: the prompt runs through the model once (parallel form),
// then one token at a time with the state carried: RWKV and Mamba layers keep a
// fixed-size recurrent state (constant memory per token), attention layers a
// KV cache (trimmed to the window with sliding_window).
#pragma once

#include "model/model.hpp"

#include <cdrmix/tokenizer.hpp>

#include <functional>
#include <string>
#include <vector>

namespace cdrmix {

struct SampleOptions {
    int64_t max_tokens = 200;
    double temperature = 1.0; // 0: greedy
    int64_t top_k = 0;        // 0: off
    double top_p = 1.0;       // 1: off
    uint64_t seed = 0;
    std::vector<std::string> stop; // generation ends once the text contains one of these
};

// Picks the next token id from logits [V] (float) with the options above.
int64_t sample_token(const torch::Tensor &logits, const SampleOptions &opts, torch::Generator &gen);

// The model's side of generating one sequence: prefill() runs the prompt once,
// step() one token, each carrying the state and returning the next token's
// logits [V] on the CPU. Holds the model in eval mode (and restores its mode
// when destroyed); gradients are off inside each call.
class Decoder {
public:
    explicit Decoder(Model &model);
    ~Decoder();
    Decoder(const Decoder &) = delete;
    Decoder &operator=(const Decoder &) = delete;

    torch::Tensor prefill(const std::vector<int64_t> &ids);
    torch::Tensor step(int64_t id);
    // What the model carries from token to token: the recurrent states and KV caches.
    const ModelState &state() const { return state_; }

private:
    Model &model_;
    bool was_training_;
    ModelState state_;
};

// Generates text after `prompt`; on_text receives each decoded piece as soon as
// it forms complete UTF-8. Returns the generated text (without the prompt).
std::string generate(Model &model, const Tokenizer &tokenizer, const std::string &prompt, const SampleOptions &opts,
                     const std::function<void(const std::string &)> &on_text = {});
// The same, where on_text returns false to end generation after that piece.
std::string generate_until(Model &model, const Tokenizer &tokenizer, const std::string &prompt,
                           const SampleOptions &opts, const std::function<bool(const std::string &)> &on_text);

} // namespace cdrmix
