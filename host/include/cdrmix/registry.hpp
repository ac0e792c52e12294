// The registry: named factories of four kinds (block, router, backend, data
// source), each with the Schema of the keys it accepts. Plugins add factories
// while they are loaded; models and scripts create objects from a config whose
// "type" key names the factory.
//
// Threads: every member may be called from any thread (one mutex guards the
// table). Factories run on the caller's thread, outside the lock, so a factory
// may create further objects through the registry it is handed (an MoE layer
// builds its router and experts through BlockContext::registry).
//
// Ownership: the registry owns its factories and schemas for the life of the
// process (plugins are never unloaded); create_* returns a new object that
// the caller owns and the registry keeps no reference to.
//
// Errors: create_* throws cdrmix::Error, one line naming the config's owner,
// the key and where its value came from, for an unknown type (listing the
// loaded ones), an unknown key (naming the closest valid one), a wrong type
// or range, and whatever the factory itself rejects.
#pragma once

#include <cdrmix/backend.hpp>
#include <cdrmix/block.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/data_source.hpp>
#include <cdrmix/router.hpp>
#include <cdrmix/schema.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cdrmix {

enum class PluginKind { Block, Router, Backend, DataSource };
// "block", "router", "backend", "data".
const char *kind_name(PluginKind kind);

// Factories receive their config already checked against their schema, with
// every default filled: read keys with Config::get_int(key) and friends.
using BlockFactory = std::function<std::shared_ptr<Block>(const Config &, const BlockContext &)>;
using RouterFactory = std::function<std::shared_ptr<Router>(const Config &, const RouterContext &)>;
using BackendFactory = std::function<std::shared_ptr<Backend>(const Config &)>;
using DataSourceFactory = std::function<std::shared_ptr<DataSource>(const Config &)>;

// Where a factory came from and what it accepts, for `cdrmix plugins`,
// `cdrmix keys` and error messages.
struct FactoryInfo {
    PluginKind kind = PluginKind::Block;
    std::string name;
    std::string description;
    std::string plugin;         // plugin name, or "builtin"
    std::string plugin_version;
    std::string file;           // shared library path, or "" for builtin
    std::shared_ptr<const Schema> schema;
    int64_t default_top_k = 0;  // routers: the top_k an MoE layer uses when its config sets none
};

class Registry {
public:
    // The process-wide registry the host and all plugins share (it lives in libcdrmix).
    static Registry &global();

    // Called from a plugin's register function (CDRMIX_PLUGIN). The schema
    // declares every key the factory reads; "type" is the registry's own.
    void add_block(const std::string &name, const std::string &description, Schema schema, BlockFactory factory);
    // default_top_k: the experts per token this router wants when the MoE layer
    // is not told (1 for a top-1 router such as switch). The layer decides top_k
    // and passes it in RouterContext; a router that cannot honour it throws.
    void add_router(const std::string &name, const std::string &description, Schema schema, RouterFactory factory,
                    int64_t default_top_k = 2);
    void add_backend(const std::string &name, const std::string &description, Schema schema, BackendFactory factory);
    void add_data_source(const std::string &name, const std::string &description, Schema schema,
                         DataSourceFactory factory);

    // Create from a config whose "type" key names the factory. create_block
    // sets ctx.registry to this registry before calling the factory.
    std::shared_ptr<Block> create_block(const Config &config, BlockContext ctx) const;
    std::shared_ptr<Router> create_router(const Config &config, const RouterContext &ctx) const;
    std::shared_ptr<Backend> create_backend(const Config &config) const;
    std::shared_ptr<DataSource> create_data_source(const Config &config) const;

    bool has(PluginKind kind, const std::string &name) const;
    // The factory of that kind and name; throws cdrmix::Error listing the loaded
    // ones (with the closest name) when there is none. `where` prefixes the message.
    FactoryInfo info(PluginKind kind, const std::string &name, const std::string &where) const;
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
    Entry find(PluginKind kind, const Config &config) const;
    // find + apply the schema + call the factory.
    template <class Factory, class... Args>
    auto build(PluginKind kind, Factory Entry::*factory, const Config &config, Args &&...args) const;

    mutable std::mutex mutex_;
    std::map<std::pair<PluginKind, std::string>, Entry> entries_;
    bool staging_ = false;
    FactoryInfo staging_info_;
    std::vector<Entry> staged_;
};

} // namespace cdrmix
