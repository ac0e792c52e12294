// Chat conversations and the template that renders them into training text.
//
// A conversation is one JSON record:
//   {"messages": [{"role": "system" | "user" | "assistant" | "tool", "content": "...",
//                  "tool_calls": [{"name": "...", "arguments": {...}}]}],   (assistant only, optional)
//    "tools": [{"name": "...", "description": "...", "parameters": <JSON Schema>}]}   (optional)
// OpenAI's spelling of a tool call, {"type": "function", "function": {"name", "arguments"}},
// with the arguments as an object or as a string of JSON, is read as the same.
//
// A template is a prefix and a suffix per role, one pair around the tools'
// declaration and one around each tool call. Rendering writes, in order: the
// tools (when the conversation declares any) as one line of JSON inside the
// tools pair, then each message as prefix + content + its tool calls (each one
// line of JSON inside the tool_call pair) + suffix. Loss (the mask the `chat`
// data source hands the trainer) is on an assistant message's content and
// suffix (so the model learns to end its turn) and, unless switched off, on its
// tool calls; never on a prefix, another role or the tools.
//
// Threads: every function may be called from any thread. Errors: cdrmix::Error,
// one line starting with `where` and naming the field (messages[2].role).
#pragma once

#include <cdrmix/config.hpp>

#include <string>
#include <vector>

namespace cdrmix {

struct ChatAffix {
    std::string prefix, suffix;
};

struct ChatTemplate {
    std::string name;
    ChatAffix system, user, assistant, tool;
    ChatAffix tools;     // around the tools' declaration, once at the start
    ChatAffix tool_call; // around each tool call of an assistant message
    const ChatAffix &role(const std::string &role) const;
};

// The built-in templates' names ("cdrmix").
std::vector<std::string> chat_template_names();
// A built-in template by name, or a YAML file: every key of the built-in
// "cdrmix" template (system, user, assistant, tool, tools, tool_call; each a
// map with `prefix` and `suffix` strings) and an optional `name`; a missing key
// or a missing prefix/suffix is an error, so a template never renders with a
// part silently empty. A spec that is neither names the closest built-in.
ChatTemplate chat_template_from_spec(const std::string &spec, const std::string &where);

struct ChatMessage {
    std::string role;              // system, user, assistant or tool
    std::string content;
    std::vector<Json> tool_calls;  // {"name": string, "arguments": object}, assistant only
};

struct Conversation {
    std::vector<ChatMessage> messages;
    Json tools = Json::array(); // tool declarations, as given
};

// The roles, in the order the documentation lists them.
const std::vector<std::string> &chat_roles();
// Reads a record; throws "<where>: <field>: <what is wrong>" (e.g. "messages[1].role:
// 'bot' is not a role (system, user, assistant, tool)").
Conversation parse_conversation(const Json &record, const std::string &where);
// A tool call in the canonical form {"name", "arguments"}; throws naming `field` otherwise.
Json normalise_tool_call(const Json &call, const std::string &where, const std::string &field);

struct ChatSegment {
    std::string text;
    bool loss = false; // its tokens are training targets
};

// The conversation as text pieces, each with or without loss (see the top).
std::vector<ChatSegment> render_conversation(const ChatTemplate &t, const Conversation &c, bool loss_on_tool_calls);
// The text a model continues to write the assistant's next turn: the
// conversation rendered, then the assistant prefix.
std::string render_prompt(const ChatTemplate &t, const Conversation &c);
// One tool call as the template writes it (prefix, compact JSON, suffix).
std::string render_tool_call(const ChatTemplate &t, const Json &call);

} // namespace cdrmix
