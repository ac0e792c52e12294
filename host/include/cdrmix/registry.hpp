// The registry: named factories of four kinds (block, router, backend, data
// source). Plugins add factories while they are loaded; models and scripts
// create objects from a config value whose "type" key names the factory.
#pragma once

#include <cdrmix/backend.hpp>
#include <cdrmix/block.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/data_source.hpp>
#include <cdrmix/router.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cdrmix {

enum class PluginKind { Block, Router, Backend, DataSource };
const char *kind_name(PluginKind kind);

using BlockFactory = std::function<std::shared_ptr<Block>(const Config &, const BlockContext &)>;
using RouterFactory = std::function<std::shared_ptr<Router>(const Config &, const RouterContext &)>;
using BackendFactory = std::function<std::shared_ptr<Backend>(const Config &)>;
using DataSourceFactory = std::function<std::shared_ptr<DataSource>(const Config &)>;

// Where a factory came from, for `cdrmix plugins` and error messages.
struct FactoryInfo {
    PluginKind kind = PluginKind::Block;
    std::string name;
    std::string description;
    std::string plugin;         // plugin name, or "builtin"
    std::string plugin_version;
    std::string file;           // shared library path, or "" for builtin
};

class Registry {
public:
    // The process-wide registry the host and all plugins share (it lives in libcdrmix).
    static Registry &global();

    void add_block(const std::string &name, const std::string &description, BlockFactory factory);
    void add_router(const std::string &name, const std::string &description, RouterFactory factory);
    void add_backend(const std::string &name, const std::string &description, BackendFactory factory);
    void add_data_source(const std::string &name, const std::string &description, DataSourceFactory factory);

    // Create from a config whose "type" key names the factory. Unknown names,
    // unknown keys and wrong types throw cdrmix::Error naming the key and plugin.
    std::shared_ptr<Block> create_block(const Config &config, const BlockContext &ctx) const;
    std::shared_ptr<Router> create_router(const Config &config, const RouterContext &ctx) const;
    std::shared_ptr<Backend> create_backend(const Config &config) const;
    std::shared_ptr<DataSource> create_data_source(const Config &config) const;

    bool has(PluginKind kind, const std::string &name) const;
    std::vector<FactoryInfo> list() const;

    // Loader protocol: registrations between begin_plugin and commit_plugin are
    // staged; commit fails (keeping nothing) on a name that is already taken.
    void begin_plugin(const std::string &plugin, const std::string &version, const std::string &file);
    void commit_plugin();   // throws cdrmix::Error naming both files on a duplicate
    void abort_plugin();

private:
    struct Entry {
        FactoryInfo info;
        BlockFactory block;
        RouterFactory router;
        BackendFactory backend;
        DataSourceFactory data;
    };
    void add(Entry entry);
    const Entry &find(PluginKind kind, const std::string &name, const Config &config) const;
    Config prepare(const Config &config, PluginKind kind, const Entry &entry) const;
    // find + prepare + call the factory + reject unread keys.
    template <class Factory, class... Args>
    auto build(PluginKind kind, Factory Entry::*factory, const Config &config, Args &&...args) const;

    mutable std::mutex mutex_;
    std::map<std::pair<PluginKind, std::string>, Entry> entries_;
    bool staging_ = false;
    FactoryInfo staging_info_;
    std::vector<Entry> staged_;
};

} // namespace cdrmix
