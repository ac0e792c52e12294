// cdrmix::Schema: the keys a configurable thing accepts, declared once.
//
// Every factory (block, router, backend, data source) and every host-side
// consumer (model spec, trainer, optimiser, schedule) declares its keys here:
// name, type, default, allowed range or values, one line of meaning, aliases.
// From that one declaration come
//   - parsing: Schema::apply validates a Config and returns it with aliases
//     renamed and defaults filled, so a factory reads every key without a
//     fallback of its own (Config::get_int(key));
//   - errors: an unknown key names the closest valid one ("did you mean
//     'load_balance_alpha'?"), a wrong type or range names the file or
//     "command line" the value came from (Config::source_of);
//   - `cdrmix keys [trainer|model|PLUGIN]` and the generated docs/reference/.
//
// Building a schema:
//   cdrmix::Schema s("Top-k softmax router");
//   s.number("load_balance_alpha", 0.01, "coefficient of the load-balance loss").min(0);
//   s.string("score_fn", "softmax", "how logits become scores").one_of({"softmax", "sigmoid"});
//
// Threads: a Schema is immutable once registered; apply() and every const
// member may be called from any thread.
#pragma once

#include <cdrmix/config.hpp>

#include <optional>
#include <string>
#include <vector>

namespace cdrmix {

enum class KeyType { Integer, Number, Boolean, String, Table, List, Any };
// "integer", "number", "boolean", "string", "table", "list", "any".
const char *key_type_name(KeyType type);

struct KeySpec {
    std::string name;
    KeyType type = KeyType::Any;
    Json default_value;               // null: no default (the key is optional, or required)
    std::string default_text;         // a default computed from other keys, in words ("min(100, steps/10)")
    bool required = false;
    std::optional<double> min, max;   // numbers: inclusive bounds
    std::vector<std::string> choices; // strings: the allowed values
    std::vector<std::string> aliases; // other spellings accepted (other trainers' names)
    std::string doc;                  // one line of meaning
};

class Schema {
public:
    // Chains settings onto the key just declared. Use it in the declaring
    // expression only: a later declaration may move the key it refers to.
    class KeyRef {
    public:
        explicit KeyRef(KeySpec &spec) : spec_(spec) {}
        KeyRef &min(double v);
        KeyRef &max(double v);
        KeyRef &range(double lo, double hi) { return min(lo).max(hi); }
        KeyRef &one_of(std::vector<std::string> values);
        KeyRef &alias(const std::string &name);
        KeyRef &required();
        KeyRef &default_is(const std::string &text); // a computed default, described

    private:
        KeySpec &spec_;
    };

    explicit Schema(std::string doc = "") : doc_(std::move(doc)) {}

    KeyRef integer(const std::string &name, Json fallback, const std::string &doc);
    KeyRef number(const std::string &name, Json fallback, const std::string &doc);
    KeyRef boolean(const std::string &name, Json fallback, const std::string &doc);
    KeyRef string(const std::string &name, Json fallback, const std::string &doc);
    // Nested tables and lists are checked by whatever consumes them (a router
    // table by the router's own schema); `any` accepts a value of any type.
    KeyRef table(const std::string &name, const std::string &doc);
    KeyRef list(const std::string &name, const std::string &doc);
    KeyRef any(const std::string &name, const std::string &doc);
    // Adds every key of another schema (shared groups such as the optimiser's).
    Schema &include(const Schema &other);

    const std::string &doc() const { return doc_; }
    const std::vector<KeySpec> &keys() const { return keys_; }
    // The key with this name or alias, or nullptr.
    const KeySpec *find(const std::string &name) const;

    // Validates every key of config (unknown keys, aliases given twice, types,
    // ranges, choices, required keys) and returns it resolved: aliases renamed
    // to their key, defaults filled. `ignore` names keys that belong to the
    // caller rather than the schema (the registry's "type"). Throws cdrmix::Error
    // naming the key, the owner and where the value came from.
    Config apply(const Config &config, const std::vector<std::string> &ignore = {}) const;

    // "; did you mean 'x'?" when a key or alias is close to `key`, else "; valid keys: a, b, c".
    std::string suggest(const std::string &key) const;
    // {doc, keys: [{name, type, default, min, max, choices, aliases, doc}]}.
    Json to_json() const;

private:
    KeyRef add(const std::string &name, KeyType type, Json fallback, const std::string &doc);

    std::string doc_;
    std::vector<KeySpec> keys_;
};

// The candidate closest to word by edit distance (transpositions count once),
// or "" when none is within a third of the word's length (at least 1, at most 3).
std::string closest_word(const std::string &word, const std::vector<std::string> &candidates);

} // namespace cdrmix
