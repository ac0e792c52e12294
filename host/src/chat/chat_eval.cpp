#include "chat/chat_eval.hpp"

#include "chat/chat_session.hpp"
#include "chat/synth_chat.hpp"
#include "chat/tool_calls.hpp"
#include "model/sampler.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/jsonl.hpp>

namespace cdrmix {

namespace {

// The model's reply to the conversation so far, cut at the end of its turn.
std::string reply_to(Model &model, const Tokenizer &tokenizer, const ChatTemplate &tmpl, const Conversation &c,
                     const ChatEvalOptions &options) {
    SampleOptions o;
    o.max_tokens = options.max_tokens;
    o.temperature = 0;
    o.stop = {end_of_turn(tmpl)};
    std::string text = generate(model, tokenizer, render_prompt(tmpl, c), o);
    const size_t at = text.find(o.stop[0]);
    if (at != std::string::npos) text.resize(at);
    return text;
}

} // namespace

Json ChatEvalResult::to_json() const {
    return {{"conversations", conversations}, {"expect_calls", expect_calls}, {"valid_calls", valid_calls},
            {"matching_calls", matching_calls}, {"correct_answers", correct_answers}, {"tool_call_validity", validity()},
            {"tool_call_match", match()},         {"answer_accuracy", accuracy()}};
}

ChatEvalResult evaluate_chat(Model &model, const Tokenizer &tokenizer, const ChatTemplate &tmpl, const std::string &path,
                             const ChatEvalOptions &options,
                             const std::function<void(int64_t, const std::string &)> &on_reply) {
    ChatEvalResult r;
    JsonlLines lines(path);
    std::string line;
    while ((options.limit <= 0 || r.conversations < options.limit) && lines.next(line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string at = path + ":" + std::to_string(lines.line());
        Json record;
        try {
            record = Json::parse(line);
        } catch (const Json::exception &e) {
            throw Error(at + ": not valid JSON: " + e.what());
        }
        const Conversation full = parse_conversation(record, at);
        if (!record.contains("answer") || !record["answer"].is_string())
            throw Error(at + ": answer: missing or not a string (the evaluation compares the final reply with it)");
        size_t first = full.messages.size(), last = full.messages.size();
        for (size_t i = 0; i < full.messages.size(); ++i)
            if (full.messages[i].role == "assistant") {
                if (first == full.messages.size()) first = i;
                last = i;
            }
        if (first == full.messages.size()) throw Error(at + ": messages: no assistant message to compare with");
        auto upto = [&](size_t n) {
            Conversation c;
            c.tools = full.tools;
            c.messages.assign(full.messages.begin(), full.messages.begin() + static_cast<std::ptrdiff_t>(n));
            return c;
        };
        ++r.conversations;
        const ChatMessage &reference = full.messages[first];
        std::string final_reply;
        if (!reference.tool_calls.empty()) {
            ++r.expect_calls;
            const std::string reply = reply_to(model, tokenizer, tmpl, upto(first), options);
            const ToolSet tools(full.tools, at);
            const auto calls = find_tool_calls(tmpl, reply, tools);
            bool valid = !calls.empty();
            for (const auto &c : calls) valid = valid && c.valid;
            if (valid) ++r.valid_calls;
            if (valid && calls.front().call == reference.tool_calls.front()) ++r.matching_calls;
            if (first == last) final_reply = reply;
        }
        if (final_reply.empty()) final_reply = reply_to(model, tokenizer, tmpl, upto(last), options);
        if (chat_answer(final_reply) == record["answer"].get<std::string>()) ++r.correct_answers;
        if (on_reply) on_reply(r.conversations - 1, final_reply);
    }
    return r;
}

} // namespace cdrmix
