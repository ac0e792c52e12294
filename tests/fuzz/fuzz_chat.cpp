// Chat records and tool calls over arbitrary bytes: every line of the input is
// parsed as a conversation (parse_conversation) and rendered with the built-in
// template; when the record's tools compile (valijson), every tool call in the
// rendered text is found and checked against them, as `cdrmix eval-chat` does
// with a model's reply. The first byte 'Y' makes the rest a template file instead.
#include "fuzz_util.hpp"

#include "chat/tool_calls.hpp"

#include <cdrmix/chat.hpp>
#include <cdrmix/error.hpp>

#include <sstream>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 0 && data[0] == 'Y') {
        const std::string path = fuzz::write_input(data + 1, size - 1, "template.yaml");
        try {
            const cdrmix::ChatTemplate t = cdrmix::chat_template_from_spec(path, "fuzz");
            (void)t.role("assistant");
        } catch (const cdrmix::Error &) {
        }
        return 0;
    }
    static const cdrmix::ChatTemplate tmpl = cdrmix::chat_template_from_spec("cdrmix", "fuzz");
    std::istringstream lines(std::string(reinterpret_cast<const char *>(data), size));
    for (std::string line; std::getline(lines, line);) {
        cdrmix::Json record;
        try {
            record = cdrmix::Json::parse(line);
        } catch (const cdrmix::Json::exception &) {
            continue;
        }
        try {
            const cdrmix::Conversation c = cdrmix::parse_conversation(record, "fuzz");
            std::string text;
            for (const auto &s : cdrmix::render_conversation(tmpl, c, true)) text += s.text;
            const cdrmix::ToolSet tools(c.tools, "fuzz");
            // Only a call that is not valid has a reason, and it always has one.
            for (const auto &call : cdrmix::find_tool_calls(tmpl, text, tools))
                if (call.valid != call.reason.empty()) std::abort();
        } catch (const cdrmix::Error &) {
        }
    }
    return 0;
}
