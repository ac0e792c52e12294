// The project's synthetic chat corpus: small conversations whose answers can be
// checked, for trying the fine-tuning stages end to end on a laptop.
//   tools:     arithmetic through a `calculator` tool, unit conversions through
//              `convert`, capitals through `lookup`; the assistant calls the
//              tool, reads its result and answers
//   instruct:  direct answers: capitals from the same table, repeating and
//              upper-casing a word, adding two numbers under 10
//   reasoning: comparisons and small sums answered after a chain of thought
//              inside <think>...</think>
// Every record is the `chat` source's format plus "answer": the final reply
// expected (after the thought span, see chat_answer), which the chat evaluation
// compares against.
//
// Held-out questions: every question (the user message's text) belongs to one
// split by a hash of its text (synth_split_of), and a split's conversations
// only ask its own questions, so a test file shares no question with a train
// file whatever their seeds and indices.
//
// Threads: every function may be called from any thread.
#pragma once

#include <cdrmix/config.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix {

enum class SynthKind { Tools, Instruct, Reasoning };
enum class SynthSplit { Train, Test };

// The split a question belongs to: test for about one question in five.
SynthSplit synth_split_of(const std::string &question);

// "tools", "instruct" or "reasoning"; anything else throws naming the closest.
SynthKind parse_synth_kind(const std::string &name);
// The tools the `tools` kind declares (JSON Schema parameters).
Json synth_tools();
// Conversation `index` of a kind's split: a pure function of (kind, seed, index, split).
Json synth_conversation(SynthKind kind, uint64_t seed, int64_t index, SynthSplit split);

// The answer in an assistant reply: the text after its last </think>, trimmed.
std::string chat_answer(const std::string &reply);

} // namespace cdrmix
