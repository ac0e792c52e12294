#include "core/yaml_config.hpp"

#include <cdrmix/error.hpp>

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <regex>

namespace cdrmix {

namespace {

Json scalar_to_json(const YAML::Node &node) {
    const std::string &s = node.Scalar();
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

Json to_json(const YAML::Node &node, int64_t &budget, const std::string &path) {
    if (--budget < 0)
        throw Error(path + ": expands to more than " + std::to_string(kMaxValues) +
                    " values (aliases are counted each time they are used); a config is far smaller");
    switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
        Json arr = Json::array();
        for (const auto &item : node) arr.push_back(to_json(item, budget, path));
        return arr;
    }
    case YAML::NodeType::Map: {
        Json obj = Json::object();
        for (const auto &kv : node) obj[kv.first.as<std::string>()] = to_json(kv.second, budget, path);
        return obj;
    }
    }
    return nullptr;
}

} // namespace

bool parse_decimal(const std::string &text, double &out) {
    static const std::regex decimal(R"([+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)");
    if (!std::regex_match(text, decimal)) return false;
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
