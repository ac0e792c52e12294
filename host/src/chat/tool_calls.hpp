// Tool calls a model writes: found between the chat template's tool_call
// markers, parsed as JSON {"name": ..., "arguments": {...}} and validated
// against the declared tool's JSON Schema (valijson), with the reason when a
// call is not valid. Used by `cdrmix chat` and the chat evaluation.
//
// Threads: a ToolSet is read-only after construction; check() may be called
// from several threads.
#pragma once

#include <cdrmix/chat.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

struct ToolCallCheck {
    std::string text;   // what stood between the markers
    Json call;          // {"name", "arguments"} when the text parsed as a call; null otherwise
    bool valid = false;
    std::string reason; // why it is not valid: one line ("" when valid)
};

class ToolSet {
public:
    // tools: a list of declarations {"name", "description", "parameters": <JSON
    // Schema of the arguments>} (OpenAI's {"type": "function", "function": {...}}
    // too). Throws cdrmix::Error naming `where` and the tool for a declaration
    // without a name, a repeated name or a schema valijson cannot read.
    ToolSet(const Json &tools, const std::string &where);
    ~ToolSet();
    ToolSet(ToolSet &&) noexcept;
    ToolSet &operator=(ToolSet &&) noexcept;
    // A tools file: a JSON list of declarations, or an object with a "tools" list.
    static ToolSet from_file(const std::string &path);

    const Json &declarations() const { return declarations_; }
    ToolCallCheck check(const std::string &text) const;

private:
    struct Compiled;
    Json declarations_;
    std::vector<std::unique_ptr<Compiled>> tools_;
};

// Every tool call in `text` (a model's reply), in order. A tool_call prefix
// without its suffix is a call that is not valid ("no closing marker").
std::vector<ToolCallCheck> find_tool_calls(const ChatTemplate &t, const std::string &text, const ToolSet &tools);

} // namespace cdrmix
