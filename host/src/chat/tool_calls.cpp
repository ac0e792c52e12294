// valijson reports a schema it cannot read by exception, not abort().
#define VALIJSON_USE_EXCEPTIONS 1

#include "chat/tool_calls.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <fstream>
#include <sstream>

namespace cdrmix {

namespace {

constexpr int kMaxSchemaDepth = 64;

// What valijson would recurse on without end: a `$ref` (to "#", or a cycle of
// refs, overflows its parser's stack), or nesting deep enough to exhaust the
// stack in the parser and the validator. Returns why the schema is refused, or "".
std::string unsupported_schema(const Json &schema, int depth = 0) {
    if (depth > kMaxSchemaDepth) return "nests deeper than " + std::to_string(kMaxSchemaDepth) + " levels";
    if (schema.is_object() && schema.contains("$ref"))
        return "uses '$ref', which tool declarations do not support (write the referenced schema out)";
    if (schema.is_structured())
        for (const auto &v : schema) {
            std::string why = unsupported_schema(v, depth + 1);
            if (!why.empty()) return why;
        }
    return "";
}

} // namespace

struct ToolSet::Compiled {
    std::string name;
    valijson::Schema schema;
};

ToolSet::~ToolSet() = default;
ToolSet::ToolSet(ToolSet &&) noexcept = default;
ToolSet &ToolSet::operator=(ToolSet &&) noexcept = default;

ToolSet::ToolSet(const Json &tools, const std::string &where) : declarations_(tools) {
    if (!tools.is_array()) throw Error(where + ": tools must be a list of declarations");
    for (size_t i = 0; i < tools.size(); ++i) {
        const std::string field = where + ": tools[" + std::to_string(i) + "]";
        const Json &decl = tools[i].is_object() && tools[i].contains("function") ? tools[i]["function"] : tools[i];
        if (!decl.is_object() || !decl.contains("name") || !decl["name"].is_string())
            throw Error(field + ": a tool declaration has a string 'name'");
        auto c = std::make_unique<Compiled>();
        c->name = decl["name"].get<std::string>();
        for (const auto &t : tools_)
            if (t->name == c->name) throw Error(field + ": tool '" + c->name + "' is declared twice");
        const Json params = decl.value("parameters", Json{{"type", "object"}});
        const std::string refused = unsupported_schema(params);
        if (!refused.empty()) throw Error(field + " ('" + c->name + "'): its 'parameters' " + refused);
        try {
            valijson::SchemaParser parser;
            valijson::adapters::NlohmannJsonAdapter adapter(params);
            parser.populateSchema(adapter, c->schema);
        } catch (const std::exception &e) {
            throw Error(field + " ('" + c->name + "'): its 'parameters' is not a JSON Schema valijson reads: " + e.what());
        }
        tools_.push_back(std::move(c));
    }
}

ToolSet ToolSet::from_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot read the tools file");
    std::stringstream ss;
    ss << in.rdbuf();
    Json j;
    try {
        j = Json::parse(ss.str());
    } catch (const Json::exception &e) {
        throw Error(path + ": not valid JSON: " + e.what());
    }
    if (j.is_object() && j.contains("tools")) j = j["tools"];
    return ToolSet(j, path);
}

ToolCallCheck ToolSet::check(const std::string &text) const {
    ToolCallCheck r;
    r.text = text;
    Json parsed;
    try {
        parsed = Json::parse(text);
    } catch (const Json::exception &e) {
        r.reason = std::string("not JSON: ") + e.what();
        return r;
    }
    try {
        r.call = normalise_tool_call(parsed, "tool call", "call");
    } catch (const Error &e) {
        r.reason = e.what();
        return r;
    }
    const std::string name = r.call["name"].get<std::string>();
    const Compiled *tool = nullptr;
    std::vector<std::string> names;
    for (const auto &t : tools_) {
        names.push_back(t->name);
        if (t->name == name) tool = t.get();
    }
    if (!tool) {
        const std::string near = closest_word(name, names);
        r.reason = "no tool '" + name + "'" + (names.empty() ? " (no tools are declared)" : near.empty() ? "" : "; did you mean '" + near + "'?");
        return r;
    }
    valijson::Validator validator;
    valijson::ValidationResults results;
    const Json &args = r.call["arguments"];
    valijson::adapters::NlohmannJsonAdapter target(args);
    if (validator.validate(tool->schema, target, &results)) {
        r.valid = true;
        return r;
    }
    // valijson lists the failure from the outermost constraint inwards; the
    // innermost names the argument that is wrong.
    valijson::ValidationResults::Error e, last;
    while (results.popError(e)) last = e;
    std::string at;
    for (const auto &c : last.context) at += c;
    r.reason = "'" + name + "' arguments do not match its schema: " + last.description + (at.empty() ? "" : " (at " + at + ")");
    return r;
}

std::vector<ToolCallCheck> find_tool_calls(const ChatTemplate &t, const std::string &text, const ToolSet &tools) {
    std::vector<ToolCallCheck> out;
    const std::string &open = t.tool_call.prefix;
    // The suffix may end with layout (a newline) that a reply cut at a stop string lacks.
    std::string close = t.tool_call.suffix;
    while (!close.empty() && (close.back() == '\n' || close.back() == ' ')) close.pop_back();
    if (open.empty() || close.empty()) return out;
    size_t at = 0;
    while ((at = text.find(open, at)) != std::string::npos) {
        const size_t start = at + open.size();
        const size_t end = text.find(close, start);
        if (end == std::string::npos) {
            ToolCallCheck r;
            r.text = text.substr(start);
            r.reason = "no closing marker '" + close + "'";
            out.push_back(std::move(r));
            break;
        }
        out.push_back(tools.check(text.substr(start, end - start)));
        at = end + close.size();
    }
    return out;
}

} // namespace cdrmix
