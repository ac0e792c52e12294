// Every registered factory (block, router, backend, data source) against its
// schema, so a new plugin is checked by being registered: the schema documents
// every key, a misspelt key is refused naming the key it resembles, and a block
// or router builds from its defaults alone. The last one fails when a factory
// reads a key its schema does not declare (Config::get_int(key) throws on an
// absent key; only the schema fills defaults).
#include "test_util.hpp"

#include <cdrmix/error.hpp>

#include <cctype>
#include <ostream>

using cdrmix::FactoryInfo;
using cdrmix::Json;
using cdrmix::PluginKind;

using cdrmix::test::error_of;

namespace {

// One registered factory (gtest prints it in failure messages).
struct Factory {
    PluginKind kind;
    std::string name;
    FactoryInfo info() const { return cdrmix::Registry::global().info(kind, name, "schema contract"); }
};
void PrintTo(const Factory &f, std::ostream *os) { *os << cdrmix::kind_name(f.kind) << " '" << f.name << "'"; }

std::vector<Factory> factories() {
    std::vector<Factory> out;
    for (const auto &f : cdrmix::Registry::global().list()) out.push_back({f.kind, f.name});
    return out;
}

std::string param_name(const ::testing::TestParamInfo<Factory> &info) {
    std::string name = std::string(cdrmix::kind_name(info.param.kind)) + "_" + info.param.name;
    for (char &c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return name;
}

// Creates the factory's object from cfg with a valid context for its kind.
void create(const FactoryInfo &f, const Json &cfg, int64_t width = 16, int64_t top_k = 1) {
    const auto &registry = cdrmix::Registry::global();
    const cdrmix::Config config(cfg, "schema contract", "test");
    switch (f.kind) {
    case PluginKind::Block: registry.create_block(config, cdrmix::BlockContext{width, 0, 2}); break;
    case PluginKind::Router: registry.create_router(config, cdrmix::RouterContext{width, 4, top_k, 0}); break;
    case PluginKind::Backend: registry.create_backend(config); break;
    case PluginKind::DataSource: registry.create_data_source(config); break;
    }
}

class SchemaContract : public ::testing::TestWithParam<Factory> {};

} // namespace

TEST_P(SchemaContract, EveryKeyIsDocumented) {
    const FactoryInfo f = GetParam().info();
    ASSERT_NE(f.schema, nullptr);
    EXPECT_FALSE(f.schema->doc().empty()) << "the schema's doc is the plugin's one-line description";
    for (const auto &key : f.schema->keys()) {
        EXPECT_FALSE(key.name.empty());
        EXPECT_FALSE(key.doc.empty()) << "key '" << key.name << "' has no doc";
    }
}

TEST_P(SchemaContract, AMisspeltKeyNamesTheKey) {
    const FactoryInfo f = GetParam().info();
    ASSERT_NE(f.schema, nullptr);
    for (const auto &key : f.schema->keys()) {
        const std::string typo = key.name + key.name.back(); // the last character doubled
        SCOPED_TRACE(typo);
        const std::string m = error_of([&] { create(f, Json{{"type", f.name}, {typo, 1}}); });
        EXPECT_NE(m.find("unknown key '" + typo + "'"), std::string::npos) << m;
        EXPECT_NE(m.find("did you mean '" + key.name + "'"), std::string::npos) << m;
    }
}

TEST_P(SchemaContract, BuildsFromItsDefaults) {
    const FactoryInfo f = GetParam().info();
    ASSERT_NE(f.schema, nullptr);
    // Data sources need files (path is required) and backends may need a device:
    // only blocks and routers are built here.
    if (f.kind != PluginKind::Block && f.kind != PluginKind::Router) GTEST_SKIP() << "builds need more than defaults";
    // moe: its defaults also build a router and experts through the registry, so a
    // failure here would not name the plugin at fault; those are checked on their own.
    if (f.kind == PluginKind::Block && f.name == "moe") GTEST_SKIP() << "builds other plugins";
    for (const auto &key : f.schema->keys())
        if (key.required) GTEST_SKIP() << "required key '" << key.name << "' has no default to build with";
    torch::manual_seed(0);
    // Width 64: the RWKV blocks' default head_size. A router gets the top_k an MoE
    // layer would give it when its config sets none.
    EXPECT_EQ(error_of([&] { create(f, Json{{"type", f.name}}, 64, f.default_top_k); }), "(no error)");
}

INSTANTIATE_TEST_SUITE_P(Registered, SchemaContract, ::testing::ValuesIn(factories()), param_name);
