#include "core/yaml_config.hpp"
#include "test_util.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>
#include <cdrmix/schema.hpp>

#include <filesystem>
#include <fstream>

using cdrmix::Config;
using cdrmix::Error;
using cdrmix::Json;

using cdrmix::test::error_of;

TEST(Config, TypedReadsAndDefaults) {
    Config c(Json{{"n", 3}, {"x", 0.5}, {"flag", true}, {"s", "hi"}, {"lua_int", 4.0}}, "router 'topk'", "a.yaml");
    EXPECT_EQ(c.get_int("n", 0), 3);
    EXPECT_DOUBLE_EQ(c.get_double("x", 0), 0.5);
    EXPECT_DOUBLE_EQ(c.get_double("n", 0), 3.0); // integers are numbers too
    EXPECT_TRUE(c.get_bool("flag", false));
    EXPECT_EQ(c.get_string("s", ""), "hi");
    EXPECT_EQ(c.get_int("lua_int", 0), 4); // Lua numbers are doubles
    EXPECT_EQ(c.get_int("absent", 7), 7);
    EXPECT_NO_THROW(c.check_unused());
}

TEST(Config, UnknownKeyNamesKeyOwnerSourceAndClosestKey) {
    Config c(Json{{"top_k", 2}, {"top_kk", 3}}, "router 'topk'", "configs/x.yaml");
    c.get_int("top_k", 1);
    EXPECT_EQ(error_of([&] { c.check_unused(); }),
              "router 'topk' (configs/x.yaml): unknown key 'top_kk'; did you mean 'top_k'?");
}

TEST(Config, WrongTypeNamesKeyAndValue) {
    Config c(Json{{"top_k", "two"}, {"alpha", 0.5}}, "router 'topk'", "x.lua");
    EXPECT_EQ(error_of([&] { c.get_int("top_k", 1); }),
              "router 'topk' (x.lua): key 'top_k' must be an integer, got a string (\"two\")");
    EXPECT_NE(error_of([&] { c.get_int("alpha", 1); }).find("must be an integer, got a number"), std::string::npos);
    EXPECT_NE(error_of([&] { c.get_bool("alpha", false); }).find("must be true or false"), std::string::npos);
}

TEST(Config, NotATable) {
    EXPECT_NE(error_of([] { Config(Json(3), "data", "s.lua"); }).find("expected a table"), std::string::npos);
}

TEST(Config, ErrorsNameTheSourceOfTheValue) {
    auto sources = std::make_shared<cdrmix::ValueSources>();
    sources->by_path[""] = "configs/models/x.yaml";
    sources->by_path["/router/z_loss"] = "command line";
    Config model(Json{{"router", {{"z_loss", "big"}, {"jitter", "x"}}}}, "model", "exp.lua", sources);
    const Config router = model.child("router", "router 'topk'");
    EXPECT_EQ(router.source_of("z_loss"), "command line");
    EXPECT_EQ(router.source_of("jitter"), "configs/models/x.yaml");
    EXPECT_NE(error_of([&] { router.get_double("z_loss", 0); }).find("router 'topk' (command line): key 'z_loss'"),
              std::string::npos);
    EXPECT_NE(error_of([&] { router.get_double("jitter", 0); }).find("(configs/models/x.yaml)"), std::string::npos);
}

TEST(Schema, AppliesDefaultsAliasesAndChecks) {
    cdrmix::Schema s("test");
    s.integer("top_k", 2, "experts per token").min(1).alias("experts_per_tok");
    s.string("policy", "probability", "drop policy").one_of({"probability", "position"});
    s.number("load_balance_alpha", 0.01, "alpha").range(0, 1);
    const Config r = s.apply(Config(Json{{"experts_per_tok", 3}}, "moe", "m.yaml"));
    EXPECT_EQ(r.get_int("top_k"), 3);
    EXPECT_EQ(r.get_string("policy"), "probability");
    EXPECT_DOUBLE_EQ(r.get_double("load_balance_alpha"), 0.01);
    EXPECT_EQ(error_of([&] { s.apply(Config(Json{{"load_balence_alpha", 0.1}}, "moe", "m.yaml")); }),
              "moe (m.yaml): unknown key 'load_balence_alpha'; did you mean 'load_balance_alpha'?");
    EXPECT_NE(error_of([&] { s.apply(Config(Json{{"zzz", 1}}, "moe", "m.yaml")); })
                  .find("valid keys: top_k, policy, load_balance_alpha"),
              std::string::npos);
    EXPECT_NE(error_of([&] { s.apply(Config(Json{{"top_k", 0}}, "moe", "m.yaml")); }).find("must be at least 1"),
              std::string::npos);
    EXPECT_NE(error_of([&] { s.apply(Config(Json{{"policy", "positon"}}, "moe", "m.yaml")); })
                  .find("did you mean \"position\"?"),
              std::string::npos);
    EXPECT_NE(error_of([&] { s.apply(Config(Json{{"top_k", 2}, {"experts_per_tok", 2}}, "moe", "m.yaml")); })
                  .find("same setting"),
              std::string::npos);
    EXPECT_NE(error_of([&] { s.apply(Config(Json{{"top_k", "two"}}, "moe", "m.yaml")); }).find("must be an integer"),
              std::string::npos);
}

TEST(Schema, ClosestWord) {
    EXPECT_EQ(cdrmix::closest_word("stpes", {"steps", "seq_len", "lr"}), "steps");
    EXPECT_EQ(cdrmix::closest_word("qqqqqq", {"steps", "seq_len"}), "");
}

TEST(Schema, CommandLineKeysReachingASchemaAreMarkedRead) {
    auto read = std::make_shared<bool>(false);
    auto sources = std::make_shared<cdrmix::ValueSources>();
    sources->read_flags["/top_k"] = read;
    cdrmix::Schema s;
    s.integer("top_k", 2, "k");
    s.apply(Config(Json{{"top_k", 4}}, "moe", "x.lua", sources));
    EXPECT_TRUE(*read);
}

TEST(Registry, DuplicateNameIsRefused) {
    cdrmix::Registry r;
    auto factory = [](const Config &, const cdrmix::RouterContext &) -> std::shared_ptr<cdrmix::Router> { return nullptr; };
    r.add_router("same", "", cdrmix::Schema(), factory);
    EXPECT_NE(error_of([&] { r.add_router("same", "", cdrmix::Schema(), factory); }).find("duplicate router 'same'"),
              std::string::npos);
    // A block may share a router's name: kinds are separate namespaces.
    EXPECT_NO_THROW(r.add_block("same", "", cdrmix::Schema(),
                                [](const Config &, const cdrmix::BlockContext &) -> std::shared_ptr<cdrmix::Block> {
                                    return nullptr;
                                }));
}

TEST(Registry, FactoriesReceiveTheRegistryThatCreatesThem) {
    cdrmix::Registry r;
    const cdrmix::Registry *seen = nullptr;
    r.add_block("probe", "", cdrmix::Schema(),
                [&](const Config &, const cdrmix::BlockContext &ctx) -> std::shared_ptr<cdrmix::Block> {
                    seen = ctx.registry;
                    return nullptr;
                });
    r.create_block(Config(Json{{"type", "probe"}}, "t", ""), cdrmix::BlockContext{8, 0, 1});
    EXPECT_EQ(seen, &r);
}

TEST(Registry, UnknownTypeListsWhatIsLoaded) {
    const std::string msg = error_of([] {
        cdrmix::Registry::global().create_router(Config(Json{{"type", "topkk"}}, "moe router", "m.yaml"), {8, 4, 2, 0});
    });
    EXPECT_NE(msg.find("moe router (m.yaml): unknown router 'topkk'; did you mean 'topk'?"), std::string::npos) << msg;
    EXPECT_NE(msg.find("sinkhorn"), std::string::npos) << msg;
}

TEST(Registry, FactoryConfigIsCheckedForUnknownKeys) {
    const std::string msg = error_of([] {
        cdrmix::Registry::global().create_router(Config(Json{{"type", "topk"}, {"z_los", 2}}, "r", "m.yaml"),
                                                 {8, 4, 2, 0});
    });
    EXPECT_EQ(msg, "router 'topk' (m.yaml): unknown key 'z_los'; did you mean 'z_loss'?");
}

TEST(Registry, MissingTypeKey) {
    EXPECT_NE(error_of([] { cdrmix::Registry::global().create_data_source(Config(Json{{"path", "x"}}, "data", "s.lua")); })
                  .find("missing key 'type'"),
              std::string::npos);
}

TEST(Yaml, TypesAndErrors) {
    const auto dir = std::filesystem::temp_directory_path() / "cdrmix_yaml_test";
    std::filesystem::create_directories(dir);
    const std::string good = (dir / "good.yaml").string(), bad = (dir / "bad.yaml").string();
    std::ofstream(good) << "a: 1\nb: 2.5\nc: true\nd: \"007\"\ne: [1, two]\nf: {g: null}\n";
    std::ofstream(bad) << "a: 1\nb: [1, 2\nc: 3\n";
    Json j = cdrmix::load_yaml_file(good);
    EXPECT_TRUE(j["a"].is_number_integer());
    EXPECT_TRUE(j["b"].is_number_float());
    EXPECT_TRUE(j["c"].is_boolean());
    EXPECT_EQ(j["d"], "007"); // quoted stays a string
    EXPECT_EQ(j["e"][1], "two");
    EXPECT_TRUE(j["f"]["g"].is_null());
    const std::string msg = error_of([&] { cdrmix::load_yaml_file(bad); });
    EXPECT_NE(msg.find(bad + ":"), std::string::npos) << msg;
    EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
    EXPECT_NE(error_of([&] { cdrmix::load_yaml_file((dir / "none.yaml").string()); }).find("no such file"), std::string::npos);
}
