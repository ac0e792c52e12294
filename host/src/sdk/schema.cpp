#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace cdrmix {

const char *key_type_name(KeyType type) {
    switch (type) {
    case KeyType::Integer: return "integer";
    case KeyType::Number: return "number";
    case KeyType::Boolean: return "boolean";
    case KeyType::String: return "string";
    case KeyType::Table: return "table";
    case KeyType::List: return "list";
    case KeyType::Any: return "any";
    }
    return "?";
}

namespace {

// Optimal string alignment distance: insertions, deletions, substitutions and
// adjacent transpositions ("stpes" -> "steps") each cost 1.
size_t edit_distance(const std::string &a, const std::string &b) {
    const size_t n = a.size(), m = b.size();
    std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
    for (size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (size_t i = 1; i <= n; ++i)
        for (size_t j = 1; j <= m; ++j) {
            const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[n][m];
}

std::string lower(std::string s) {
    for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string quoted_list(const std::vector<std::string> &values, const char *quote) {
    std::string out;
    for (const auto &v : values) out += (out.empty() ? "" : ", ") + std::string(quote) + v + quote;
    return out;
}

std::string number_text(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

bool type_matches(const Json &v, KeyType type) {
    switch (type) {
    case KeyType::Integer:
        if (v.is_number_integer() || v.is_number_unsigned()) return true;
        // Lua numbers are doubles: integral ones are integers.
        return v.is_number_float() && std::isfinite(v.get<double>()) &&
               v.get<double>() == std::floor(v.get<double>()) && std::fabs(v.get<double>()) < 9.0e15;
    case KeyType::Number: return v.is_number();
    case KeyType::Boolean: return v.is_boolean();
    case KeyType::String: return v.is_string();
    case KeyType::Table: return v.is_object();
    case KeyType::List: return v.is_array();
    case KeyType::Any: return true;
    }
    return false;
}

const char *type_phrase(KeyType type) {
    switch (type) {
    case KeyType::Integer: return "an integer";
    case KeyType::Number: return "a number";
    case KeyType::Boolean: return "true or false";
    case KeyType::String: return "a string";
    case KeyType::Table: return "a table";
    case KeyType::List: return "a list";
    case KeyType::Any: return "a value";
    }
    return "?";
}

} // namespace

std::string closest_word(const std::string &word, const std::vector<std::string> &candidates) {
    const size_t limit = std::clamp<size_t>(word.size() / 3, 1, 3);
    std::string best;
    size_t best_d = limit + 1;
    const std::string w = lower(word);
    for (const auto &c : candidates) {
        if (c == word) continue;
        size_t d = edit_distance(w, lower(c));
        // A prefix or an extension of a key is close whatever its length ("lr" / "lr_min").
        if (d > limit && (lower(c).rfind(w, 0) == 0 || w.rfind(lower(c), 0) == 0) && std::min(w.size(), c.size()) >= 3)
            d = limit;
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    return best_d <= limit ? best : "";
}

// ---- declaring -----------------------------------------------------------------

Schema::KeyRef &Schema::KeyRef::min(double v) {
    spec_.min = v;
    return *this;
}

Schema::KeyRef &Schema::KeyRef::max(double v) {
    spec_.max = v;
    return *this;
}

Schema::KeyRef &Schema::KeyRef::one_of(std::vector<std::string> values) {
    spec_.choices = std::move(values);
    return *this;
}

Schema::KeyRef &Schema::KeyRef::alias(const std::string &name) {
    spec_.aliases.push_back(name);
    return *this;
}

Schema::KeyRef &Schema::KeyRef::required() {
    spec_.required = true;
    return *this;
}

Schema::KeyRef &Schema::KeyRef::default_is(const std::string &text) {
    spec_.default_text = text;
    return *this;
}

Schema::KeyRef Schema::add(const std::string &name, KeyType type, Json fallback, const std::string &doc) {
    if (find(name)) throw Error("schema: key '" + name + "' declared twice");
    KeySpec k;
    k.name = name;
    k.type = type;
    k.default_value = std::move(fallback);
    k.doc = doc;
    if (!k.default_value.is_null() && !type_matches(k.default_value, type))
        throw Error("schema: the default of key '" + name + "' is not " + type_phrase(type));
    keys_.push_back(std::move(k));
    return KeyRef(keys_.back());
}

Schema::KeyRef Schema::integer(const std::string &name, Json fallback, const std::string &doc) {
    return add(name, KeyType::Integer, std::move(fallback), doc);
}
Schema::KeyRef Schema::number(const std::string &name, Json fallback, const std::string &doc) {
    return add(name, KeyType::Number, std::move(fallback), doc);
}
Schema::KeyRef Schema::boolean(const std::string &name, Json fallback, const std::string &doc) {
    return add(name, KeyType::Boolean, std::move(fallback), doc);
}
Schema::KeyRef Schema::string(const std::string &name, Json fallback, const std::string &doc) {
    return add(name, KeyType::String, std::move(fallback), doc);
}
Schema::KeyRef Schema::table(const std::string &name, const std::string &doc) {
    return add(name, KeyType::Table, nullptr, doc);
}
Schema::KeyRef Schema::list(const std::string &name, const std::string &doc) {
    return add(name, KeyType::List, nullptr, doc);
}
Schema::KeyRef Schema::any(const std::string &name, const std::string &doc) {
    return add(name, KeyType::Any, nullptr, doc);
}

Schema &Schema::include(const Schema &other) {
    for (const auto &k : other.keys_) {
        if (find(k.name)) throw Error("schema: key '" + k.name + "' declared twice");
        keys_.push_back(k);
    }
    return *this;
}

const KeySpec *Schema::find(const std::string &name) const {
    for (const auto &k : keys_) {
        if (k.name == name) return &k;
        for (const auto &a : k.aliases)
            if (a == name) return &k;
    }
    return nullptr;
}

// ---- applying ------------------------------------------------------------------

std::string Schema::suggest(const std::string &key) const {
    std::vector<std::string> names;
    for (const auto &k : keys_) {
        names.push_back(k.name);
        names.insert(names.end(), k.aliases.begin(), k.aliases.end());
    }
    const std::string near = closest_word(key, names);
    if (!near.empty()) return "; did you mean '" + near + "'?";
    std::vector<std::string> canonical;
    for (const auto &k : keys_) canonical.push_back(k.name);
    return canonical.empty() ? "; it takes no keys" : "; valid keys: " + quoted_list(canonical, "");
}

Config Schema::apply(const Config &config, const std::vector<std::string> &ignore) const {
    Json out = Json::object();
    const Json &in = config.value();
    for (auto it = in.begin(); it != in.end(); ++it) {
        const std::string &key = it.key();
        if (std::find(ignore.begin(), ignore.end(), key) != ignore.end()) continue;
        config.raw(key); // read: a command-line key that reaches a schema is consumed
        const KeySpec *spec = find(key);
        if (!spec) throw Error(config.where(key) + ": unknown key '" + key + "'" + suggest(key));
        if (it->is_null()) continue;
        if (key != spec->name && in.contains(spec->name) && !in[spec->name].is_null())
            throw Error(config.where(key) + ": '" + key + "' and '" + spec->name +
                        "' are the same setting; give only one");
        const Json &v = *it;
        if (!type_matches(v, spec->type))
            throw Error(config.where(key) + ": key '" + key + "' must be " + type_phrase(spec->type) + ", got " +
                        v.dump());
        if (v.is_number() && (spec->min || spec->max)) {
            const double d = v.get<double>();
            if ((spec->min && d < *spec->min) || (spec->max && d > *spec->max)) {
                std::string range = spec->min && spec->max
                                        ? "between " + number_text(*spec->min) + " and " + number_text(*spec->max)
                                        : spec->min ? "at least " + number_text(*spec->min)
                                                    : "at most " + number_text(*spec->max);
                throw Error(config.where(key) + ": key '" + key + "' must be " + range + ", got " + v.dump());
            }
        }
        if (v.is_string() && !spec->choices.empty() &&
            std::find(spec->choices.begin(), spec->choices.end(), v.get<std::string>()) == spec->choices.end()) {
            const std::string near = closest_word(v.get<std::string>(), spec->choices);
            throw Error(config.where(key) + ": key '" + key + "' must be one of " + quoted_list(spec->choices, "\"") +
                        ", got " + v.dump() + (near.empty() ? "" : "; did you mean \"" + near + "\"?"));
        }
        out[spec->name] = v;
    }
    for (const auto &k : keys_) {
        if (out.contains(k.name)) continue;
        if (k.required) throw Error(config.where() + ": missing required key '" + k.name + "' (" + k.doc + ")");
        if (!k.default_value.is_null()) out[k.name] = k.default_value;
    }
    return config.with_value(std::move(out), config.owner());
}

Json Schema::to_json() const {
    Json keys = Json::array();
    for (const auto &k : keys_) {
        Json j = {{"name", k.name}, {"type", key_type_name(k.type)}, {"doc", k.doc}};
        if (!k.default_value.is_null()) j["default"] = k.default_value;
        if (!k.default_text.empty()) j["default"] = k.default_text;
        if (k.required) j["required"] = true;
        if (k.min) j["min"] = *k.min;
        if (k.max) j["max"] = *k.max;
        if (!k.choices.empty()) j["choices"] = k.choices;
        if (!k.aliases.empty()) j["aliases"] = k.aliases;
        keys.push_back(std::move(j));
    }
    return {{"doc", doc_}, {"keys", keys}};
}

} // namespace cdrmix
