// `cdrmix chat CHECKPOINT [--tools tools.json] [--template T] [--system TEXT]`:
// an interactive chat through a chat template (chat/chat_session.hpp). Each
// input line is a user message, answered as it is generated; commands:
//   /reset         start again (the system message stays)
//   /save FILE     write the conversation as one `chat` JSONL record
//   /tool TEXT     give the result of the last tool call (usually JSON); the model goes on
//   /quit          (or the end of the input)
// After a reply, each tool call in it is shown with whether it is valid against
// its tool's schema and why not. Works the same with stdin piped (no prompt is
// printed when stdin is not a terminal).
//
// `cdrmix eval-chat CHECKPOINT --data FILE`: tool-call validity and answer
// accuracy on held-out conversations with answers (chat/chat_eval.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace cdrmix {

class ChatCommands {
public:
    // Adds the two subcommands to app.
    explicit ChatCommands(CLI::App &app);
    bool selected() const { return *chat_ || *eval_; }
    // Runs the selected one (plugins must be loaded); returns the exit code.
    int run() const;

private:
    int run_chat() const;
    int run_eval() const;

    CLI::App *chat_ = nullptr, *eval_ = nullptr;
    std::string checkpoint_, template_, runs_dir_ = "runs";
    int64_t max_tokens_ = 256;
    // chat
    std::string tools_, system_;
    double temperature_ = 0.0;
    int64_t seed_ = 1;
    // eval-chat
    std::string data_;
    int64_t limit_ = 0, show_ = 0;
    bool json_ = false;
};

} // namespace cdrmix
