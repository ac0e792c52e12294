#include <cdrmix/config.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/schema.hpp>

namespace cdrmix {

namespace {

std::string type_of(const Json &j) {
    switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::string: return "a string";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    case Json::value_t::array: return "a list";
    case Json::value_t::object: return "a table";
    default: return "an unsupported value";
    }
}

} // namespace

std::string describe_origin(const std::string &owner, const std::string &source) {
    return source.empty() ? owner : owner + " (" + source + ")";
}

std::string pointer_key(const std::string &key) {
    std::string out;
    for (char ch : key) {
        if (ch == '~') out += "~0";
        else if (ch == '/') out += "~1";
        else out += ch;
    }
    return out;
}

Config::Config(Json value, std::string owner, std::string source, std::shared_ptr<const ValueSources> sources,
               std::string path)
    : value_(std::move(value)), owner_(std::move(owner)), source_(std::move(source)), path_(std::move(path)),
      sources_(std::move(sources)), used_(std::make_shared<std::set<std::string>>()) {
    if (value_.is_null()) value_ = Json::object();
    if (!value_.is_object())
        throw Error(where() + ": expected a table of settings, got " + type_of(value_));
}

std::string Config::source_of(const std::string &key) const {
    if (!sources_ || sources_->by_path.empty()) return source_;
    std::string p = key.empty() ? path_ : path_ + "/" + pointer_key(key);
    for (;;) {
        auto it = sources_->by_path.find(p);
        if (it != sources_->by_path.end()) return it->second;
        if (p.empty()) return source_;
        p.erase(p.rfind('/'));
    }
}

std::string Config::where() const { return describe_origin(owner_, source_of("")); }

std::string Config::where(const std::string &key) const { return describe_origin(owner_, source_of(key)); }

bool Config::has(const std::string &key) const { return value_.contains(key) && !value_[key].is_null(); }

const Json *Config::lookup(const std::string &key) const {
    used_->insert(key);
    if (sources_ && !sources_->read_flags.empty()) {
        auto flag = sources_->read_flags.find(path_ + "/" + pointer_key(key));
        if (flag != sources_->read_flags.end()) *flag->second = true;
    }
    auto it = value_.find(key);
    if (it == value_.end() || it->is_null()) return nullptr;
    return &*it;
}

void Config::type_error(const std::string &key, const char *expected) const {
    throw Error(where(key) + ": key '" + key + "' must be " + expected + ", got " + type_of(value_.at(key)) + " (" +
                value_.at(key).dump() + ")");
}

void Config::missing(const std::string &key) const { throw Error(where() + ": missing required key '" + key + "'"); }

int64_t Config::get_int(const std::string &key, int64_t fallback) const {
    const Json *j = lookup(key);
    if (!j) return fallback;
    if (j->is_number_integer() || j->is_number_unsigned()) return j->get<int64_t>();
    // Lua numbers are doubles: accept integral ones.
    if (j->is_number_float()) {
        double d = j->get<double>();
        if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
    }
    type_error(key, "an integer");
}

double Config::get_double(const std::string &key, double fallback) const {
    const Json *j = lookup(key);
    if (!j) return fallback;
    if (!j->is_number()) type_error(key, "a number");
    return j->get<double>();
}

bool Config::get_bool(const std::string &key, bool fallback) const {
    const Json *j = lookup(key);
    if (!j) return fallback;
    if (!j->is_boolean()) type_error(key, "true or false");
    return j->get<bool>();
}

std::string Config::get_string(const std::string &key, const std::string &fallback) const {
    const Json *j = lookup(key);
    if (!j) return fallback;
    if (!j->is_string()) type_error(key, "a string");
    return j->get<std::string>();
}

int64_t Config::get_int(const std::string &key) const {
    if (!has(key)) missing(key);
    return get_int(key, 0);
}

double Config::get_double(const std::string &key) const {
    if (!has(key)) missing(key);
    return get_double(key, 0.0);
}

bool Config::get_bool(const std::string &key) const {
    if (!has(key)) missing(key);
    return get_bool(key, false);
}

std::string Config::get_string(const std::string &key) const {
    if (!has(key)) missing(key);
    return get_string(key, "");
}

Config Config::child(const std::string &key, const std::string &owner) const {
    const Json *j = lookup(key);
    if (j && !j->is_object()) type_error(key, "a table");
    return Config(j ? *j : Json::object(), owner, source_, sources_, path_ + "/" + pointer_key(key));
}

Config Config::with_value(Json value, std::string owner) const {
    return Config(std::move(value), std::move(owner), source_, sources_, path_);
}

Json Config::raw(const std::string &key) const {
    const Json *j = lookup(key);
    return j ? *j : Json();
}

void Config::check_unused() const {
    for (auto it = value_.begin(); it != value_.end(); ++it) {
        if (used_->count(it.key())) continue;
        const std::string near = closest_word(it.key(), std::vector<std::string>(used_->begin(), used_->end()));
        throw Error(where(it.key()) + ": unknown key '" + it.key() + "'" +
                    (near.empty() ? std::string() : "; did you mean '" + near + "'?"));
    }
}

} // namespace cdrmix
