// The routing inspector's data (`cdrmix inspect`, the dashboard's inspector):
// which experts each token of a text went to in every MoE layer, and, over a
// sample, which tokens each expert receives most. Both come from the routing
// the MoE layers record in a forward pass (ForwardContext::record_routing:
// indices after capacity limits, and the router's probabilities), so they are
// the router's own decisions, not a recomputation.
#pragma once

#include "model/model.hpp"

#include <cdrmix/config.hpp>
#include <cdrmix/tokenizer.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix {

struct ExpertChoice {
    int64_t expert = 0;
    double prob = 0; // the router's probability for this expert (its share of the token when renormalised)
};

struct RoutedToken {
    int64_t id = 0;
    std::string text;                            // the token decoded on its own
    std::vector<std::vector<ExpertChoice>> layers; // per MoE layer (TextRouting::layers), the filled slots
};

struct TextRouting {
    std::vector<int64_t> layers; // model layer index of each MoE layer, in order
    int64_t num_experts = 0;
    std::vector<RoutedToken> tokens;
};

// Runs the model (eval mode, no gradients; the caller's train/eval mode is
// restored) over the text's tokens in one sequence. Throws cdrmix::Error when
// the text encodes to nothing or the model has no MoE layer.
TextRouting route_text(Model &model, const Tokenizer &tokenizer, const std::string &text);
Json to_json(const TextRouting &routing);

// Coarse, language-agnostic token classes for the specialisation view, from a
// token's decoded text: its first character decides.
enum class TokenClass { Letter, Digit, Space, Punctuation, Other };
inline constexpr std::array<const char *, 5> kTokenClassNames{"letters", "digits", "spaces", "punctuation", "other"};
TokenClass token_class(const std::string &text);

// Counts over a sample of which tokens each expert of each MoE layer received.
class ExpertSpecialisation {
public:
    explicit ExpertSpecialisation(int64_t vocab_size);
    // tokens: the forward's input ids [B,T]; records: its routing (one per MoE layer).
    void add(const at::Tensor &tokens, const std::vector<RoutingRecord> &records);
    // Runs `batches` batches of the split through the model and adds their routing.
    void add_split(Model &model, DataSource &data, Split split, int64_t batches, int64_t batch_size, int64_t seq_len);

    struct Expert {
        int64_t tokens = 0;                                 // slots it filled
        std::vector<std::pair<int64_t, int64_t>> top;       // (token id, count), most frequent first
        std::array<int64_t, kTokenClassNames.size()> classes{}; // by token class
    };
    struct Layer {
        int64_t layer = 0;
        std::vector<Expert> experts;
    };
    // The top `top_n` tokens of each expert; classes from the tokenizer's decoding.
    std::vector<Layer> summary(const Tokenizer &tokenizer, int64_t top_n) const;
    static Json to_json(const std::vector<Layer> &layers, const Tokenizer &tokenizer);

private:
    int64_t V_;
    std::vector<int64_t> layers_, experts_; // per MoE layer: its index and number of experts
    std::vector<at::Tensor> counts_;        // per MoE layer: [E * V] int64
};

} // namespace cdrmix
