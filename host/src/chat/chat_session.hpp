// A conversation with a model through a chat template: the history, the
// assistant's streamed replies (cut at the end of its turn), the tool calls in
// them checked against the declared tools, tool results fed back. `cdrmix chat`
// is a line-by-line front end to it.
//
// Threads: one thread at a time. Errors: cdrmix::Error (a prompt the tokenizer
// cannot encode, a file that cannot be written).
#pragma once

#include "chat/tool_calls.hpp"
#include "model/model.hpp"
#include "model/sampler.hpp"

#include <cdrmix/chat.hpp>
#include <cdrmix/tokenizer.hpp>

#include <functional>
#include <string>
#include <vector>

namespace cdrmix {

struct ChatReply {
    std::string text;                  // what the model wrote, the end-of-turn marker removed
    std::vector<ToolCallCheck> calls;  // the tool calls in it, checked
};

class ChatSession {
public:
    // tools: the declarations the prompt shows and calls are checked against (may be empty).
    // system: a system message that starts the conversation and survives reset() ("" for none).
    ChatSession(Model &model, const Tokenizer &tokenizer, ChatTemplate tmpl, ToolSet tools, SampleOptions options,
                std::string system);

    // Adds the user's message and generates the reply; on_text receives it as it is written.
    ChatReply user(const std::string &text, const std::function<void(const std::string &)> &on_text = {});
    // Adds a tool's result and generates the assistant's next turn.
    ChatReply tool_result(const std::string &text, const std::function<void(const std::string &)> &on_text = {});
    // Back to the system message alone.
    void reset();
    // The conversation as one JSONL record of the `chat` source's format (atomic write).
    void save(const std::string &path) const;
    const Conversation &conversation() const { return conversation_; }
    const ChatTemplate &chat_template() const { return template_; }

private:
    ChatReply respond(const std::function<void(const std::string &)> &on_text);

    Model &model_;
    const Tokenizer &tokenizer_;
    ChatTemplate template_;
    ToolSet tools_;
    SampleOptions options_;
    std::string system_;
    Conversation conversation_;
    uint64_t turns_ = 0; // each reply samples with its own seed: options.seed + turn
};

// The end-of-turn marker a reply stops at: the assistant suffix without its trailing layout.
std::string end_of_turn(const ChatTemplate &t);

} // namespace cdrmix
