// The plugin loader against fixture libraries: each bad one is refused with a
// one-line reason naming the file, and the host carries on.
#include "core/plugin_loader.hpp"

#include <cdrmix/plugin_abi.h>

#include <gtest/gtest.h>
#include <torch/version.h>

#include <cstdlib>

using cdrmix::PluginKind;

namespace {

class Loader : public ::testing::Test {
protected:
    cdrmix::Registry registry;
    cdrmix::PluginLoader loader{registry};

    static std::string fixture(const std::string &name) {
        return std::string(CDRMIX_FIXTURE_DIR) + "/libcdrmix-fixture-" + name + ".so";
    }
    std::string only_problem() {
        EXPECT_EQ(loader.problems().size(), 1u);
        if (loader.problems().empty()) return "";
        const std::string msg = loader.problems()[0].message;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
        EXPECT_FALSE(loader.problems()[0].hint.empty());
        return msg;
    }
};

} // namespace

TEST_F(Loader, LoadsAWellFormedPlugin) {
    ASSERT_TRUE(loader.load_file(fixture("good")));
    EXPECT_TRUE(registry.has(PluginKind::Router, "fixture_good"));
    ASSERT_EQ(loader.loaded().size(), 1u);
    EXPECT_EQ(loader.loaded()[0].version, "2.3.4");
    auto list = registry.list();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].file, fixture("good"));
}

TEST_F(Loader, RefusesAnotherAbiVersion) {
    EXPECT_FALSE(loader.load_file(fixture("wrong_abi")));
    const std::string msg = only_problem();
    EXPECT_NE(msg.find(fixture("wrong_abi")), std::string::npos) << msg;
    EXPECT_NE(msg.find("built for plugin ABI 99.0, host has " + std::to_string(CDRMIX_ABI_VERSION_MAJOR) + "." +
                       std::to_string(CDRMIX_ABI_VERSION_MINOR)),
              std::string::npos)
        << msg;
}

TEST_F(Loader, RefusesAnotherLibTorch) {
    EXPECT_FALSE(loader.load_file(fixture("wrong_torch")));
    const std::string msg = only_problem();
    EXPECT_NE(msg.find(fixture("wrong_torch")), std::string::npos) << msg;
    const std::string major = std::to_string(TORCH_VERSION_MAJOR);
    EXPECT_NE(msg.find("built for LibTorch " + major + ".99, host has LibTorch " + major + "."), std::string::npos)
        << msg;
}

TEST_F(Loader, ReportsALibraryThatIsNotAPlugin) {
    EXPECT_FALSE(loader.load_file(fixture("not_a_plugin")));
    EXPECT_NE(only_problem().find("not a cdrmix plugin (no cdrmix_plugin_entry symbol)"), std::string::npos);
}

TEST_F(Loader, ReportsAFileThatIsNotALibrary) {
    EXPECT_FALSE(loader.load_file(std::string(CDRMIX_FIXTURE_DIR) + "/garbage.so"));
    EXPECT_NE(only_problem().find("cannot be loaded"), std::string::npos);
}

TEST_F(Loader, ReportsAThrowingRegisterFunctionAndKeepsNothing) {
    EXPECT_FALSE(loader.load_file(fixture("throws")));
    EXPECT_NE(only_problem().find("register function failed: fixture refuses to register"), std::string::npos);
    EXPECT_FALSE(registry.has(PluginKind::DataSource, "fixture_throws_data"));
}

TEST_F(Loader, DuplicateNamesNameBothFiles) {
    EXPECT_TRUE(loader.load_file(fixture("dup_a")));
    EXPECT_FALSE(loader.load_file(fixture("dup_b")));
    const std::string msg = only_problem();
    EXPECT_NE(msg.find(fixture("dup_b")), std::string::npos) << msg;
    EXPECT_NE(msg.find("duplicate router 'fixture_dup': already registered by " + fixture("dup_a")), std::string::npos)
        << msg;
}

TEST_F(Loader, AFolderOfMixedFixturesLoadsTheGoodOnes) {
    loader.load_directory(CDRMIX_FIXTURE_DIR);
    EXPECT_TRUE(registry.has(PluginKind::Router, "fixture_good"));
    EXPECT_TRUE(registry.has(PluginKind::Router, "fixture_dup"));
    EXPECT_EQ(loader.problems().size(), 6u); // wrong_abi, wrong_torch, not_a_plugin, garbage, throws, dup_b
}

TEST(LoaderSearchPath, OwnFolderThenEnvironmentThenCommandLine) {
    setenv("CDRMIX_PLUGIN_PATH", "/env/one:/env/two", 1);
    auto dirs = cdrmix::PluginLoader::search_path({"/cli/dir"});
    unsetenv("CDRMIX_PLUGIN_PATH");
    ASSERT_EQ(dirs.size(), 4u);
    EXPECT_NE(dirs[0].find("plugins"), std::string::npos); // build/plugins beside build/bin
    EXPECT_EQ(dirs[1], "/env/one");
    EXPECT_EQ(dirs[2], "/env/two");
    EXPECT_EQ(dirs[3], "/cli/dir");
}
