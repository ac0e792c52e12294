#include "core/yaml_config.hpp"

#include <cdrmix/error.hpp>

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

namespace cdrmix {

namespace {

Json scalar_to_json(const YAML::Node &node) {
    const std::string &s = node.Scalar();
    if (node.Tag() == "!") return s; // quoted: always a string
    if (s == "null" || s == "~" || s.empty()) return nullptr;
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
    char *end = nullptr;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (end && *end == '\0') return static_cast<int64_t>(i);
    double d = std::strtod(s.c_str(), &end);
    if (end && *end == '\0') return d;
    return s;
}

Json to_json(const YAML::Node &node) {
    switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
        Json arr = Json::array();
        for (const auto &item : node) arr.push_back(to_json(item));
        return arr;
    }
    case YAML::NodeType::Map: {
        Json obj = Json::object();
        for (const auto &kv : node) obj[kv.first.as<std::string>()] = to_json(kv.second);
        return obj;
    }
    }
    return nullptr;
}

} // namespace

Json load_yaml_file(const std::string &path) {
    if (!std::filesystem::is_regular_file(path)) throw Error(path + ": no such file");
    try {
        return to_json(YAML::LoadFile(path));
    } catch (const YAML::Exception &e) {
        throw Error(path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
    }
}

} // namespace cdrmix
