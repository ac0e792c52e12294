#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

namespace cdrmix {

const char *kind_name(PluginKind kind) {
    switch (kind) {
    case PluginKind::Block: return "block";
    case PluginKind::Router: return "router";
    case PluginKind::Backend: return "backend";
    case PluginKind::DataSource: return "data";
    }
    return "?";
}

Registry &Registry::global() {
    static Registry registry;
    return registry;
}

namespace {
std::string origin(const FactoryInfo &info) { return info.file.empty() ? info.plugin : info.file; }
} // namespace

void Registry::add(Entry entry) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (staging_) {
        entry.info.plugin = staging_info_.plugin;
        entry.info.plugin_version = staging_info_.plugin_version;
        entry.info.file = staging_info_.file;
        staged_.push_back(std::move(entry));
        return;
    }
    if (entry.info.plugin.empty()) entry.info.plugin = "builtin";
    auto key = std::make_pair(entry.info.kind, entry.info.name);
    auto it = entries_.find(key);
    if (it != entries_.end())
        throw Error(std::string("duplicate ") + kind_name(entry.info.kind) + " '" + entry.info.name +
                    "': already registered by " + origin(it->second.info));
    entries_.emplace(key, std::move(entry));
}

namespace {
FactoryInfo make_info(PluginKind kind, const std::string &name, const std::string &description, Schema schema) {
    FactoryInfo info;
    info.kind = kind;
    info.name = name;
    info.description = description;
    info.schema = std::make_shared<const Schema>(std::move(schema));
    return info;
}
} // namespace

void Registry::add_block(const std::string &name, const std::string &description, Schema schema,
                         BlockFactory factory) {
    Entry e;
    e.info = make_info(PluginKind::Block, name, description, std::move(schema));
    e.block = std::move(factory);
    add(std::move(e));
}

void Registry::add_router(const std::string &name, const std::string &description, Schema schema,
                          RouterFactory factory, int64_t default_top_k) {
    if (default_top_k < 1) throw Error("router '" + name + "': default_top_k must be at least 1");
    Entry e;
    e.info = make_info(PluginKind::Router, name, description, std::move(schema));
    e.info.default_top_k = default_top_k;
    e.router = std::move(factory);
    add(std::move(e));
}

void Registry::add_backend(const std::string &name, const std::string &description, Schema schema,
                           BackendFactory factory) {
    Entry e;
    e.info = make_info(PluginKind::Backend, name, description, std::move(schema));
    e.backend = std::move(factory);
    add(std::move(e));
}

void Registry::add_data_source(const std::string &name, const std::string &description, Schema schema,
                               DataSourceFactory factory) {
    Entry e;
    e.info = make_info(PluginKind::DataSource, name, description, std::move(schema));
    e.data = std::move(factory);
    add(std::move(e));
}

void Registry::begin_plugin(const std::string &plugin, const std::string &version, const std::string &file) {
    std::lock_guard<std::mutex> lock(mutex_);
    staging_ = true;
    staging_info_ = {PluginKind::Block, "", "", plugin, version, file, nullptr, 0};
    staged_.clear();
}

void Registry::commit_plugin() {
    std::lock_guard<std::mutex> lock(mutex_);
    staging_ = false;
    std::vector<Entry> staged = std::move(staged_);
    staged_.clear();
    for (size_t i = 0; i < staged.size(); ++i) {
        const FactoryInfo &info = staged[i].info;
        auto it = entries_.find({info.kind, info.name});
        if (it != entries_.end())
            throw Error(std::string("duplicate ") + kind_name(info.kind) + " '" + info.name +
                        "': already registered by " + origin(it->second.info));
        for (size_t j = 0; j < i; ++j)
            if (staged[j].info.kind == info.kind && staged[j].info.name == info.name)
                throw Error(std::string("duplicate ") + kind_name(info.kind) + " '" + info.name +
                            "' registered twice by " + info.file);
    }
    for (auto &e : staged) {
        auto key = std::make_pair(e.info.kind, e.info.name);
        entries_.emplace(key, std::move(e));
    }
}

void Registry::abort_plugin() {
    std::lock_guard<std::mutex> lock(mutex_);
    staging_ = false;
    staged_.clear();
}

bool Registry::has(PluginKind kind, const std::string &name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.count({kind, name}) > 0;
}

std::vector<FactoryInfo> Registry::list() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<FactoryInfo> out;
    for (const auto &kv : entries_) out.push_back(kv.second.info);
    return out;
}

FactoryInfo Registry::info(PluginKind kind, const std::string &name, const std::string &where) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find({kind, name});
    if (it != entries_.end()) return it->second.info;
    std::vector<std::string> known;
    for (const auto &kv : entries_)
        if (kv.first.first == kind) known.push_back(kv.first.second);
    std::string list;
    for (const auto &k : known) list += (list.empty() ? "" : ", ") + k;
    const std::string near = closest_word(name, known);
    throw Error(where + ": unknown " + kind_name(kind) + " '" + name + "'" +
                (near.empty() ? std::string() : "; did you mean '" + near + "'?") +
                " (loaded: " + (list.empty() ? "none" : list) + "; see `cdrmix plugins`)");
}

Registry::Entry Registry::find(PluginKind kind, const Config &config) const {
    const std::string type = config.get_string("type", "");
    if (type.empty())
        throw Error(config.where() + ": missing key 'type' (which " + kind_name(kind) + " to use)");
    info(kind, type, config.where("type")); // throws the unknown-name message
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.at({kind, type});
}

template <class Factory, class... Args>
auto Registry::build(PluginKind kind, Factory Entry::*factory, const Config &config, Args &&...args) const {
    const Entry e = find(kind, config);
    const Config owned = config.with_value(config.value(), std::string(kind_name(kind)) + " '" + e.info.name + "'");
    return (e.*factory)(e.info.schema->apply(owned, {"type"}), std::forward<Args>(args)...);
}

std::shared_ptr<Block> Registry::create_block(const Config &config, BlockContext ctx) const {
    ctx.registry = this;
    return build(PluginKind::Block, &Entry::block, config, ctx);
}

std::shared_ptr<Router> Registry::create_router(const Config &config, const RouterContext &ctx) const {
    return build(PluginKind::Router, &Entry::router, config, ctx);
}

std::shared_ptr<Backend> Registry::create_backend(const Config &config) const {
    return build(PluginKind::Backend, &Entry::backend, config);
}

std::shared_ptr<DataSource> Registry::create_data_source(const Config &config) const {
    return build(PluginKind::DataSource, &Entry::data, config);
}

} // namespace cdrmix
