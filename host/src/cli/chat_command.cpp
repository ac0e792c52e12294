#include "cli/chat_command.hpp"

#include "chat/chat_eval.hpp"
#include "chat/chat_session.hpp"
#include "cli/checkpoint_args.hpp"
#include "train/checkpoint.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <cstdio>
#include <iostream>

#include <unistd.h>

namespace cdrmix {

namespace {

// The template the run trained with when its data was a `chat` source, else the built-in one.
std::string saved_template(const LoadedCheckpoint &ckpt) {
    const Json &rc = ckpt.run_config;
    if (rc.is_object() && rc.contains("data") && rc["data"].is_object() && rc["data"].value("type", "") == "chat" &&
        rc["data"].contains("template") && rc["data"]["template"].is_string())
        return rc["data"]["template"].get<std::string>();
    return "cdrmix";
}

void print_calls(const ChatReply &reply) {
    for (const auto &c : reply.calls) {
        const std::string name = c.call.is_object() ? c.call["name"].get<std::string>() : "?";
        if (c.valid)
            std::printf("[tool call %s: valid] %s\n", name.c_str(), c.call["arguments"].dump().c_str());
        else
            std::printf("[tool call %s: invalid] %s\n", name.c_str(), c.reason.c_str());
    }
    if (!reply.calls.empty()) std::printf("(give the result with /tool TEXT)\n");
}

} // namespace

ChatCommands::ChatCommands(CLI::App &app) {
    chat_ = app.add_subcommand("chat", "Chat with a checkpoint through a chat template (tool calls checked)");
    chat_->add_option("checkpoint", checkpoint_, "Checkpoint folder, run folder, or auto")->required();
    chat_->add_option("--tools", tools_, "Tools file: a JSON list of declarations with JSON Schema 'parameters'");
    chat_->add_option("--template", template_, "Chat template: built-in name or YAML file (default: the run's, else cdrmix)");
    chat_->add_option("--system", system_, "A system message that starts the conversation");
    chat_->add_option("--temperature", temperature_, "Sampling temperature; 0 is greedy (default)");
    chat_->add_option("--max-tokens", max_tokens_, "Most tokens per reply (default 256)");
    chat_->add_option("--seed", seed_, "Sampling seed (default 1)");
    chat_->add_option("--runs-dir", runs_dir_, "Where `auto` looks (default: runs)");

    eval_ = app.add_subcommand("eval-chat", "Tool-call validity and answer accuracy on conversations with answers");
    eval_->add_option("checkpoint", checkpoint_, "Checkpoint folder, run folder, or auto")->required();
    eval_->add_option("--data", data_, "JSONL conversations with an 'answer' (cdrmix data synth-chat)")->required();
    eval_->add_option("--template", template_, "Chat template: built-in name or YAML file (default: the run's, else cdrmix)");
    eval_->add_option("--max-tokens", max_tokens_, "Most tokens per reply (default 256)");
    eval_->add_option("--limit", limit_, "Conversations to evaluate (default: all)");
    eval_->add_option("--show", show_, "Print the first N final replies");
    eval_->add_flag("--json", json_, "Print the result as one JSON line");
    eval_->add_option("--runs-dir", runs_dir_, "Where `auto` looks (default: runs)");
}

int ChatCommands::run() const { return *chat_ ? run_chat() : run_eval(); }

int ChatCommands::run_eval() const {
    if (max_tokens_ < 1 || limit_ < 0 || show_ < 0) throw Error("eval-chat: need --max-tokens >= 1, --limit >= 0 and --show >= 0");
    const LoadedCheckpoint ckpt = load_checkpoint(checkpoint_dir(checkpoint_, runs_dir_), Registry::global());
    const ChatTemplate tmpl =
        chat_template_from_spec(template_.empty() ? saved_template(ckpt) : template_, "eval-chat: --template");
    ChatEvalOptions o;
    o.max_tokens = max_tokens_;
    o.limit = limit_;
    const ChatEvalResult r = evaluate_chat(*ckpt.model, *ckpt.tokenizer, tmpl, data_, o, [&](int64_t i, const std::string &reply) {
        if (i < show_) std::printf("reply %lld: %s\n", static_cast<long long>(i + 1), Json(reply).dump().c_str());
    });
    Json j = r.to_json();
    j["checkpoint"] = ckpt.dir;
    j["data"] = data_;
    if (json_) {
        std::printf("%s\n", j.dump().c_str());
        return 0;
    }
    std::printf("checkpoint %s, %s: %lld conversations\n", ckpt.dir.c_str(), data_.c_str(), static_cast<long long>(r.conversations));
    if (r.expect_calls > 0)
        std::printf("tool-call validity %.3f (%lld of %lld), matching the reference %.3f\n", r.validity(),
                    static_cast<long long>(r.valid_calls), static_cast<long long>(r.expect_calls), r.match());
    std::printf("answer accuracy %.3f (%lld of %lld)\n", r.accuracy(), static_cast<long long>(r.correct_answers),
                static_cast<long long>(r.conversations));
    return 0;
}

int ChatCommands::run_chat() const {
    if (max_tokens_ < 1 || temperature_ < 0) throw Error("chat: need --max-tokens >= 1 and --temperature >= 0");
    const LoadedCheckpoint ckpt = load_checkpoint(checkpoint_dir(checkpoint_, runs_dir_), Registry::global());
    ToolSet tools = tools_.empty() ? ToolSet(Json::array(), "chat") : ToolSet::from_file(tools_);
    SampleOptions o;
    o.max_tokens = max_tokens_;
    o.temperature = temperature_;
    o.seed = static_cast<uint64_t>(seed_);
    ChatSession session(*ckpt.model, *ckpt.tokenizer,
                        chat_template_from_spec(template_.empty() ? saved_template(ckpt) : template_, "chat: --template"),
                        std::move(tools), o, system_);
    const bool tty = isatty(STDIN_FILENO);
    auto stream = [](const std::string &piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
    };
    std::string line;
    for (;;) {
        if (tty) std::printf("> "), std::fflush(stdout);
        if (!std::getline(std::cin, line) || line == "/quit") break;
        if (line.empty()) continue;
        try {
            if (line == "/reset") {
                session.reset();
                std::printf("(conversation reset)\n");
            } else if (line.rfind("/save ", 0) == 0) {
                const std::string path = line.substr(6);
                session.save(path);
                std::printf("(saved %zu messages to %s)\n", session.conversation().messages.size(), path.c_str());
            } else if (line.rfind("/tool ", 0) == 0) {
                const ChatReply r = session.tool_result(line.substr(6), stream);
                std::printf("\n");
                print_calls(r);
            } else if (line[0] == '/') {
                std::printf("(unknown command %s: /reset, /save FILE, /tool TEXT, /quit)\n", line.c_str());
            } else {
                const ChatReply r = session.user(line, stream);
                std::printf("\n");
                print_calls(r);
            }
        } catch (const Error &e) {
            // A bad line (a file that cannot be written, text the tokenizer cannot encode) ends nothing.
            std::fflush(stdout);
            std::fprintf(stderr, "cdrmix: error: %s\n", e.what());
        }
        std::fflush(stdout);
    }
    return 0;
}

} // namespace cdrmix
