#include <cdrmix/chat.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>

namespace cdrmix {

namespace {

// The parts of a template, in file order, with where each lives in ChatTemplate.
const std::vector<std::pair<const char *, ChatAffix ChatTemplate::*>> &template_parts() {
    static const std::vector<std::pair<const char *, ChatAffix ChatTemplate::*>> parts = {
        {"system", &ChatTemplate::system},   {"user", &ChatTemplate::user},   {"assistant", &ChatTemplate::assistant},
        {"tool", &ChatTemplate::tool},       {"tools", &ChatTemplate::tools}, {"tool_call", &ChatTemplate::tool_call}};
    return parts;
}

ChatTemplate builtin_cdrmix() {
    ChatTemplate t;
    t.name = "cdrmix";
    t.system = {"<|system|>\n", "\n"};
    t.user = {"<|user|>\n", "\n"};
    t.assistant = {"<|assistant|>\n", "<|end|>\n"};
    t.tool = {"<|tool|>\n", "\n"};
    t.tools = {"<|tools|>\n", "\n"};
    t.tool_call = {"<tool_call>", "</tool_call>\n"};
    return t;
}

std::string field_name(const std::string &base, size_t index) { return base + "[" + std::to_string(index) + "]"; }

// "; did you mean 'x'?" for the closest candidate, or "" when none is close.
std::string did_you_mean(const std::string &word, const std::vector<std::string> &candidates) {
    const std::string near = closest_word(word, candidates);
    return near.empty() ? "" : "; did you mean '" + near + "'?";
}

// A YAML scalar string; anything else names the key.
std::string yaml_string(const YAML::Node &node, const std::string &where, const std::string &key) {
    if (!node || !node.IsScalar())
        throw Error(where + ": key '" + key + "' must be a string");
    return node.as<std::string>();
}

// A template is a few short strings; anything near this size is not one.
constexpr uintmax_t kMaxTemplateBytes = 1 << 20;

ChatTemplate load_template_file(const std::string &path) {
    std::error_code ec;
    const uintmax_t bytes = std::filesystem::file_size(path, ec);
    if (ec || bytes > kMaxTemplateBytes)
        throw Error(path + ": a chat template file must be readable and at most 1 MiB" +
                    (ec ? std::string() : " (it has " + std::to_string(bytes) + " bytes)"));
    YAML::Node root;
    try {
        root = YAML::LoadFile(path);
    } catch (const YAML::Exception &e) {
        throw Error(path + ": not a valid chat template: " + e.what());
    }
    if (!root.IsMap()) throw Error(path + ": a chat template is a map of parts (system, user, assistant, tool, tools, tool_call)");
    std::vector<std::string> known = {"name"};
    for (const auto &[key, member] : template_parts()) known.push_back(key);
    for (const auto &kv : root) {
        const std::string key = kv.first.as<std::string>();
        if (std::find(known.begin(), known.end(), key) == known.end())
            throw Error(path + ": unknown key '" + key + "' (keys: name, system, user, assistant, tool, tools, tool_call)" +
                        did_you_mean(key, known));
    }
    ChatTemplate t;
    t.name = root["name"] ? yaml_string(root["name"], path, "name") : std::filesystem::path(path).stem().string();
    for (const auto &[key, member] : template_parts()) {
        const YAML::Node part = root[key];
        if (!part || !part.IsMap())
            throw Error(path + ": key '" + key + "' is missing or not a map with 'prefix' and 'suffix'");
        for (const auto &kv : part) {
            const std::string k = kv.first.as<std::string>();
            if (k != "prefix" && k != "suffix")
                throw Error(path + ": unknown key '" + key + "." + k + "' (a part has 'prefix' and 'suffix')");
        }
        (t.*member).prefix = yaml_string(part["prefix"], path, std::string(key) + ".prefix");
        (t.*member).suffix = yaml_string(part["suffix"], path, std::string(key) + ".suffix");
    }
    return t;
}

} // namespace

const ChatAffix &ChatTemplate::role(const std::string &role) const {
    for (const auto &[key, member] : template_parts())
        if (role == key) return this->*member;
    throw Error("chat template '" + name + "': no role '" + role + "'");
}

std::vector<std::string> chat_template_names() { return {"cdrmix"}; }

ChatTemplate chat_template_from_spec(const std::string &spec, const std::string &where) {
    if (spec == "cdrmix") return builtin_cdrmix();
    std::error_code ec;
    if (std::filesystem::is_regular_file(spec, ec)) return load_template_file(spec);
    throw Error(where + ": key 'template': '" + spec + "' is neither a built-in template (cdrmix) nor a template file" +
                did_you_mean(spec, chat_template_names()));
}

const std::vector<std::string> &chat_roles() {
    static const std::vector<std::string> roles = {"system", "user", "assistant", "tool"};
    return roles;
}

Json normalise_tool_call(const Json &call, const std::string &where, const std::string &field) {
    if (!call.is_object()) throw Error(where + ": " + field + ": a tool call is an object with 'name' and 'arguments'");
    const Json &f = call.contains("function") ? call["function"] : call;
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string())
        throw Error(where + ": " + field + ": the tool call has no string 'name'");
    Json args = f.contains("arguments") ? f["arguments"] : Json::object();
    if (args.is_string()) {
        try {
            args = Json::parse(args.get<std::string>());
        } catch (const Json::exception &e) {
            throw Error(where + ": " + field + ".arguments: a string that is not JSON: " + e.what());
        }
    }
    if (!args.is_object()) throw Error(where + ": " + field + ".arguments: must be an object");
    return {{"name", f["name"]}, {"arguments", args}};
}

Conversation parse_conversation(const Json &record, const std::string &where) {
    if (!record.is_object()) throw Error(where + ": a conversation is an object with 'messages'");
    if (!record.contains("messages")) throw Error(where + ": the record has no 'messages' field");
    const Json &messages = record["messages"];
    if (!messages.is_array() || messages.empty()) throw Error(where + ": messages: must be a non-empty list");
    Conversation c;
    if (record.contains("tools")) {
        c.tools = record["tools"];
        if (!c.tools.is_array()) throw Error(where + ": tools: must be a list of tool declarations");
        for (size_t i = 0; i < c.tools.size(); ++i) {
            const Json &tool = c.tools[i].contains("function") ? c.tools[i]["function"] : c.tools[i];
            if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string())
                throw Error(where + ": " + field_name("tools", i) + ": a tool declaration has a string 'name'");
        }
    }
    for (size_t i = 0; i < messages.size(); ++i) {
        const std::string field = field_name("messages", i);
        const Json &m = messages[i];
        if (!m.is_object()) throw Error(where + ": " + field + ": a message is an object with 'role' and 'content'");
        if (!m.contains("role") || !m["role"].is_string()) throw Error(where + ": " + field + ".role: missing or not a string");
        ChatMessage msg;
        msg.role = m["role"].get<std::string>();
        const auto &roles = chat_roles();
        if (std::find(roles.begin(), roles.end(), msg.role) == roles.end())
            throw Error(where + ": " + field + ".role: '" + msg.role + "' is not a role (system, user, assistant, tool)" +
                        did_you_mean(msg.role, roles));
        const bool has_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
        if (m.contains("content") && m["content"].is_string()) msg.content = m["content"].get<std::string>();
        else if (!(has_calls && (!m.contains("content") || m["content"].is_null())))
            throw Error(where + ": " + field + ".content: missing or not a string");
        if (has_calls) {
            if (msg.role != "assistant") throw Error(where + ": " + field + ".tool_calls: only an assistant message makes tool calls");
            if (!m["tool_calls"].is_array()) throw Error(where + ": " + field + ".tool_calls: must be a list");
            for (size_t k = 0; k < m["tool_calls"].size(); ++k)
                msg.tool_calls.push_back(normalise_tool_call(m["tool_calls"][k], where, field_name(field + ".tool_calls", k)));
        }
        c.messages.push_back(std::move(msg));
    }
    return c;
}

std::string render_tool_call(const ChatTemplate &t, const Json &call) {
    return t.tool_call.prefix + call.dump() + t.tool_call.suffix;
}

std::vector<ChatSegment> render_conversation(const ChatTemplate &t, const Conversation &c, bool loss_on_tool_calls) {
    std::vector<ChatSegment> out;
    auto add = [&out](const std::string &text, bool loss) {
        if (text.empty()) return;
        if (!out.empty() && out.back().loss == loss) out.back().text += text;
        else out.push_back({text, loss});
    };
    if (!c.tools.empty()) add(t.tools.prefix + c.tools.dump() + t.tools.suffix, false);
    for (const auto &m : c.messages) {
        const ChatAffix &a = t.role(m.role);
        const bool assistant = m.role == "assistant";
        add(a.prefix, false);
        add(m.content, assistant);
        for (const auto &call : m.tool_calls) add(render_tool_call(t, call), loss_on_tool_calls);
        add(a.suffix, assistant);
    }
    return out;
}

std::string render_prompt(const ChatTemplate &t, const Conversation &c) {
    std::string text;
    for (const auto &s : render_conversation(t, c, true)) text += s.text;
    return text + t.assistant.prefix;
}

} // namespace cdrmix
