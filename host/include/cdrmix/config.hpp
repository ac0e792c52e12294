// cdrmix::Config: one configuration value handed to a factory, whether it came
// from a YAML file or a Lua table. Every key a factory reads is marked used;
// after the factory returns, the registry calls check_unused(), so a typo such
// as `top_kk: 2` is an error naming the key, the owner and the source file.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace cdrmix {

using Json = nlohmann::json;

class Config {
public:
    Config() : Config(Json::object(), "config", "") {}
    // owner: who reads it, e.g. "router 'topk'"; source: where it came from, e.g. "configs/x.yaml".
    Config(Json value, std::string owner, std::string source);

    bool has(const std::string &key) const;

    // Typed reads. Wrong types throw cdrmix::Error naming key, owner and source.
    int64_t get_int(const std::string &key, int64_t fallback) const;
    double get_double(const std::string &key, double fallback) const;
    bool get_bool(const std::string &key, bool fallback) const;
    std::string get_string(const std::string &key, const std::string &fallback) const;
    int64_t require_int(const std::string &key) const;
    std::string require_string(const std::string &key) const;

    // A nested object (empty object when absent) with its own owner name.
    Config child(const std::string &key, const std::string &owner) const;
    // The raw value under key (marks it used); null when absent.
    Json raw(const std::string &key) const;

    // Throws on the first key nobody read.
    void check_unused() const;

    const Json &value() const { return value_; }
    const std::string &owner() const { return owner_; }
    const std::string &source() const { return source_; }
    // "owner (source)" for error messages.
    std::string where() const;

private:
    const Json *lookup(const std::string &key) const;
    [[noreturn]] void type_error(const std::string &key, const char *expected) const;

    Json value_;
    std::string owner_;
    std::string source_;
    std::shared_ptr<std::set<std::string>> used_;
};

} // namespace cdrmix
