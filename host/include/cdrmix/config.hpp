// cdrmix::Config: one configuration value handed to a consumer (a factory, the
// model spec, the trainer), whether it came from a YAML file, a Lua table or
// the command line. Consumers declare their keys in a cdrmix::Schema; the
// registry applies the schema before a factory runs, so the factory reads
// every key with the one-argument getters (the defaults are already filled).
//
// Where values came from: a Config knows its own source (a file or script)
// and, through ValueSources, the source of any value inside it that came from
// elsewhere ("command line", the YAML preset a script loaded). Errors name the
// value's own source.
//
// Threads: a Config is a value; copies share the record of which keys were
// read. Use one Config (and its copies) from one thread at a time.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace cdrmix {

using Json = nlohmann::json;

// Sources of values inside one config tree. Paths are JSON pointers relative
// to the tree's root ("" the root, "/router/z_loss" a nested key); a value's
// source is that of its longest listed prefix.
struct ValueSources {
    std::map<std::string, std::string> by_path;
    // Set when a strict consumer reads the value at that path: the Lua runtime
    // registers one per command-line override that added a key, and reports
    // those that nothing read.
    std::map<std::string, std::shared_ptr<bool>> read_flags;
};

class Config {
public:
    Config() : Config(Json::object(), "config", "") {}
    // owner: who reads it, e.g. "router 'topk'"; source: where it came from, e.g.
    // "configs/x.yaml"; sources: finer-grained sources inside it (may be null);
    // path: this config's place in that tree ("" for its root).
    Config(Json value, std::string owner, std::string source, std::shared_ptr<const ValueSources> sources = nullptr,
           std::string path = "");

    bool has(const std::string &key) const;

    // Typed reads with a fallback for an absent key. Wrong types throw
    // cdrmix::Error naming key, owner and the value's source.
    int64_t get_int(const std::string &key, int64_t fallback) const;
    double get_double(const std::string &key, double fallback) const;
    bool get_bool(const std::string &key, bool fallback) const;
    std::string get_string(const std::string &key, const std::string &fallback) const;
    // Typed reads of a key that must be present (a schema's defaults fill absent keys).
    int64_t get_int(const std::string &key) const;
    double get_double(const std::string &key) const;
    bool get_bool(const std::string &key) const;
    std::string get_string(const std::string &key) const;
    int64_t require_int(const std::string &key) const { return get_int(key); }
    std::string require_string(const std::string &key) const { return get_string(key); }

    // A nested object (empty object when absent) with its own owner name; it
    // keeps the sources, so errors inside it still name the right file.
    Config child(const std::string &key, const std::string &owner) const;
    // The same place in the tree with another value and owner (schemas and the
    // registry hand factories a resolved copy this way).
    Config with_value(Json value, std::string owner) const;
    // The raw value under key (marks it used); null when absent.
    Json raw(const std::string &key) const;

    // Throws on the first key nobody read, naming the closest key that was read.
    void check_unused() const;

    const Json &value() const { return value_; }
    const std::string &owner() const { return owner_; }
    const std::string &source() const { return source_; }
    const std::string &path() const { return path_; }
    const std::shared_ptr<const ValueSources> &sources() const { return sources_; }
    // Where the value under key came from: "command line", a file or the script.
    std::string source_of(const std::string &key) const;
    // "owner (source)" for error messages; where(key) names the key's own source.
    std::string where() const;
    std::string where(const std::string &key) const;

private:
    const Json *lookup(const std::string &key) const;
    [[noreturn]] void type_error(const std::string &key, const char *expected) const;
    [[noreturn]] void missing(const std::string &key) const;

    Json value_;
    std::string owner_;
    std::string source_;
    std::string path_;
    std::shared_ptr<const ValueSources> sources_;
    std::shared_ptr<std::set<std::string>> used_;
};

// "owner (source)" as Config::where() writes it.
std::string describe_origin(const std::string &owner, const std::string &source);
// JSON-pointer escaping of one key ("a/b" -> "a~1b").
std::string pointer_key(const std::string &key);

} // namespace cdrmix
