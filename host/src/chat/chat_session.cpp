#include "chat/chat_session.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

namespace cdrmix {

namespace {

std::string trim_layout(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
    return s;
}

// Writes streamed text on, holding back a tail that may be the start of a stop
// string, so the marker a reply ends at is never shown.
class StopFilter {
public:
    StopFilter(std::vector<std::string> stops, const std::function<void(const std::string &)> &sink)
        : stops_(std::move(stops)), sink_(sink) {}
    void add(const std::string &piece) {
        pending_ += piece;
        for (const auto &s : stops_) {
            const size_t at = pending_.find(s);
            if (at != std::string::npos) {
                emit(pending_.substr(0, at));
                pending_.clear();
                done_ = true;
                return;
            }
        }
        size_t keep = 0; // the longest tail of pending_ that begins some stop string
        for (const auto &s : stops_)
            for (size_t n = std::min(s.size() - 1, pending_.size()); n > keep; --n)
                if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
                    keep = n;
                    break;
                }
        emit(pending_.substr(0, pending_.size() - keep));
        pending_.erase(0, pending_.size() - keep);
    }
    void finish() {
        if (!done_) emit(pending_);
        pending_.clear();
    }

private:
    void emit(const std::string &s) {
        if (!s.empty() && sink_) sink_(s);
    }
    std::vector<std::string> stops_;
    const std::function<void(const std::string &)> &sink_;
    std::string pending_;
    bool done_ = false;
};

} // namespace

std::string end_of_turn(const ChatTemplate &t) { return trim_layout(t.assistant.suffix); }

ChatSession::ChatSession(Model &model, const Tokenizer &tokenizer, ChatTemplate tmpl, ToolSet tools,
                         SampleOptions options, std::string system)
    : model_(model), tokenizer_(tokenizer), template_(std::move(tmpl)), tools_(std::move(tools)),
      options_(std::move(options)), system_(std::move(system)) {
    // A model that does not end its turn would go on to write the user's next one.
    for (const std::string &s : {end_of_turn(template_), trim_layout(template_.user.prefix)})
        if (!s.empty()) options_.stop.push_back(s);
    reset();
}

void ChatSession::reset() {
    conversation_ = Conversation{};
    conversation_.tools = tools_.declarations();
    if (!system_.empty()) conversation_.messages.push_back({"system", system_, {}});
}

ChatReply ChatSession::user(const std::string &text, const std::function<void(const std::string &)> &on_text) {
    conversation_.messages.push_back({"user", text, {}});
    return respond(on_text);
}

ChatReply ChatSession::tool_result(const std::string &text, const std::function<void(const std::string &)> &on_text) {
    conversation_.messages.push_back({"tool", text, {}});
    return respond(on_text);
}

ChatReply ChatSession::respond(const std::function<void(const std::string &)> &on_text) {
    const std::string prompt = render_prompt(template_, conversation_);
    SampleOptions o = options_;
    o.seed = options_.seed + turns_++;
    StopFilter filter(o.stop, on_text);
    std::string raw = generate_until(model_, tokenizer_, prompt, o, [&](const std::string &piece) {
        filter.add(piece);
        return true;
    });
    filter.finish();
    for (const auto &s : o.stop) {
        const size_t at = raw.find(s);
        if (at != std::string::npos) raw.resize(at);
    }
    ChatReply reply;
    reply.text = raw;
    reply.calls = find_tool_calls(template_, raw, tools_);
    // History: the text outside the calls as content, the calls that parsed as tool_calls.
    ChatMessage m{"assistant", raw, {}};
    if (!reply.calls.empty()) {
        m.content = raw.substr(0, raw.find(template_.tool_call.prefix));
        for (const auto &c : reply.calls)
            if (!c.call.is_null()) m.tool_calls.push_back(c.call);
    }
    conversation_.messages.push_back(std::move(m));
    return reply;
}

void ChatSession::save(const std::string &path) const {
    Json messages = Json::array();
    for (const auto &m : conversation_.messages) {
        Json j = {{"role", m.role}, {"content", m.content}};
        if (!m.tool_calls.empty()) j["tool_calls"] = m.tool_calls;
        messages.push_back(std::move(j));
    }
    Json record = {{"messages", messages}};
    if (!conversation_.tools.empty()) record["tools"] = conversation_.tools;
    write_file_atomic(path, record.dump() + "\n");
}

} // namespace cdrmix
