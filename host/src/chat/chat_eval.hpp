// How well a model chats on held-out conversations whose answers are known
// (records with an "answer" field, as synth_chat writes them):
//   - tool-call validity: of the conversations whose first assistant turn calls
//     a tool, the share where the model's first reply holds at least one tool
//     call and every call in it is valid against its tool's schema;
//   - tool-call match: the share where the first call is also the reference call
//     (same name and arguments);
//   - answer accuracy: of all conversations, the share whose final reply's
//     answer (chat_answer: after any </think>) equals "answer". The final reply
//     is generated after the reference messages before the last assistant turn
//     (the reference tool call and the tool's result), so a wrong call does not
//     also count against the answer.
// Replies are greedy, each cut at the end of the assistant's turn.
#pragma once

#include "model/model.hpp"

#include <cdrmix/chat.hpp>
#include <cdrmix/tokenizer.hpp>

#include <functional>
#include <string>
#include <vector>

namespace cdrmix {

struct ChatEvalOptions {
    int64_t max_tokens = 96; // per reply
    int64_t limit = 0;       // conversations read from the file; 0: all
};

struct ChatEvalResult {
    int64_t conversations = 0;
    int64_t expect_calls = 0, valid_calls = 0, matching_calls = 0;
    int64_t correct_answers = 0;
    double validity() const { return expect_calls > 0 ? double(valid_calls) / double(expect_calls) : 0.0; }
    double match() const { return expect_calls > 0 ? double(matching_calls) / double(expect_calls) : 0.0; }
    double accuracy() const { return conversations > 0 ? double(correct_answers) / double(conversations) : 0.0; }
    Json to_json() const;
};

// Reads the JSONL file (every line a conversation with "answer"; a bad line
// throws naming the file, line and field). `on_reply(index, reply)` (optional)
// sees every final reply, for showing examples.
ChatEvalResult evaluate_chat(Model &model, const Tokenizer &tokenizer, const ChatTemplate &tmpl,
                             const std::string &path, const ChatEvalOptions &options,
                             const std::function<void(int64_t, const std::string &)> &on_reply = {});

} // namespace cdrmix
