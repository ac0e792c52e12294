#include "core/yaml_config.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/utf8.hpp>

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>

namespace cdrmix {

namespace {

// yaml-cpp passes any bytes through (a Latin-1 file, say); a config's text is
// JSON afterwards, whose writer throws on anything but UTF-8.
const std::string &text_of(const YAML::Node &node, const std::string &path) {
    const std::string &s = node.Scalar();
    if (first_invalid_utf8(s) != std::string_view::npos)
        throw Error(path + ":" + std::to_string(node.Mark().line + 1) + ": not valid UTF-8 text");
    return s;
}

Json scalar_to_json(const YAML::Node &node, const std::string &path) {
    const std::string &s = text_of(node, path);
    if (node.Tag() == "!") return s; // quoted: always a string
    if (s == "null" || s == "~" || s.empty()) return nullptr;
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
    double d = 0;
    if (!parse_decimal(s, d)) return s;
    errno = 0;
    char *end = nullptr;
    const long long i = std::strtoll(s.c_str(), &end, 10);
    if (*end == '\0' && errno != ERANGE) return static_cast<int64_t>(i);
    return d;
}

// Aliases are expanded into JSON, so a small file can name an exponential
// number of values ("billion laughs"): every value made counts against a budget.
constexpr int64_t kMaxValues = 1000000;
constexpr std::uintmax_t kMaxFileBytes = 16u << 20;
// An alias inside its own anchor (`a: &x {b: *x}`) makes a cycle, which the
// value budget alone would follow until the stack overflows.
constexpr int kMaxDepth = 100;

Json to_json(const YAML::Node &node, int64_t &budget, const std::string &path, int depth = 0) {
    if (--budget < 0)
        throw Error(path + ": expands to more than " + std::to_string(kMaxValues) +
                    " values (aliases are counted each time they are used); a config is far smaller");
    if (depth > kMaxDepth)
        throw Error(path + ":" + std::to_string(node.Mark().line + 1) + ": nests deeper than " +
                    std::to_string(kMaxDepth) + " levels (an alias used inside its own anchor?)");
    switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node, path);
    case YAML::NodeType::Sequence: {
        Json arr = Json::array();
        for (const auto &item : node) arr.push_back(to_json(item, budget, path, depth + 1));
        return arr;
    }
    case YAML::NodeType::Map: {
        Json obj = Json::object();
        for (const auto &kv : node) {
            if (!kv.first.IsScalar())
                throw Error(path + ":" + std::to_string(kv.first.Mark().line + 1) + ": a key must be a plain value");
            obj[text_of(kv.first, path)] = to_json(kv.second, budget, path, depth + 1);
        }
        return obj;
    }
    }
    return nullptr;
}

} // namespace

// [+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?, matched by hand: std::regex's
// matcher recurses once per character, and a 40 kB number overflowed the stack.
bool parse_decimal(const std::string &text, double &out) {
    size_t i = 0;
    const auto sign = [&] { if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i; };
    const auto digits = [&] {
        const size_t from = i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
        return i - from;
    };
    sign();
    size_t mantissa = digits();
    if (i < text.size() && text[i] == '.') ++i, mantissa += digits();
    if (mantissa == 0) return false;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        sign();
        if (digits() == 0) return false;
    }
    if (i != text.size()) return false;
    out = std::strtod(text.c_str(), nullptr);
    return true;
}

Json load_yaml_file(const std::string &path) {
    if (!std::filesystem::exists(path)) throw Error(path + ": no such file");
    if (!std::filesystem::is_regular_file(path)) throw Error(path + ": not a regular file");
    if (std::filesystem::file_size(path) > kMaxFileBytes)
        throw Error(path + ": " + std::to_string(std::filesystem::file_size(path)) +
                    " bytes is more than a YAML config may hold (" + std::to_string(kMaxFileBytes) + ")");
    Json out;
    try {
        int64_t budget = kMaxValues;
        out = to_json(YAML::LoadFile(path), budget, path);
    } catch (const YAML::Exception &e) {
        throw Error(path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
    }
    if (!out.is_object())
        throw Error(path + ": the top level must be a mapping of keys (key: value), not " +
                    std::string(out.is_array() ? "a list" : out.is_null() ? "empty" : "a single value"));
    return out;
}

} // namespace cdrmix
