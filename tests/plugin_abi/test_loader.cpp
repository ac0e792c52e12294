// The plugin loader against fixture libraries: each bad one is refused with a
// one-line reason naming the file, and the host carries on.
#include "core/plugin_loader.hpp"
#include "test_util.hpp"

#include <cdrmix/plugin_abi.h>

#include <gtest/gtest.h>
#include <torch/version.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

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

// ---- the probe: plugins that kill the loading process are loaded in a child first ----

namespace {

std::string probe_fixture(const std::string &name) {
    return std::string(CDRMIX_PROBE_FIXTURE_DIR) + "/libcdrmix-fixture-" + name + ".so";
}

// A probe with its own cache file (fresh per test) and a short timeout for the hanging fixture.
cdrmix::PluginProbe test_probe(const std::string &cache_name) {
    auto host = cdrmix::PluginProbe::for_this_host();
    EXPECT_TRUE(host.has_value()) << "cdrmix-plugin-probe is built beside the test program";
    const std::string cache = std::string(CDRMIX_PROBE_FIXTURE_DIR) + "/" + cache_name + ".json";
    std::remove(cache.c_str());
    return cdrmix::PluginProbe(cdrmix::executable_dir() + "/cdrmix-plugin-probe", cache, 3);
}

} // namespace

TEST(PluginProbe, NamesEachPluginThatKillsTheLoaderAndLoadsTheRest) {
    cdrmix::Registry registry;
    cdrmix::PluginLoader loader(registry, test_probe("all"));
    for (const char *name : {"crash_in_init", "abort_in_init", "exit_in_init", "hang_in_init", "crash_in_register"})
        EXPECT_FALSE(loader.load_file(probe_fixture(name))) << name;
    EXPECT_TRUE(loader.load_file(std::string(CDRMIX_FIXTURE_DIR) + "/libcdrmix-fixture-good.so"));
    EXPECT_TRUE(registry.has(PluginKind::Router, "fixture_good"));

    const std::map<std::string, std::string> expected = {
        {"crash_in_init", "crashed while loading (SIGSEGV: Segmentation fault) in a probe process; not loaded"},
        {"abort_in_init", "aborted while loading (SIGABRT: Aborted) in a probe process; not loaded"},
        {"exit_in_init", "called exit(3) while loading in a probe process; not loaded"},
        {"hang_in_init", "did not finish loading within 3 s (stuck in its initialisation?) in a probe process; not loaded"},
        {"crash_in_register", "crashed while loading (SIGSEGV: Segmentation fault) in a probe process; not loaded"}};
    ASSERT_EQ(loader.problems().size(), expected.size());
    for (const auto &p : loader.problems()) {
        EXPECT_EQ(p.message.find('\n'), std::string::npos) << p.message;
        bool matched = false;
        for (const auto &[name, why] : expected)
            if (p.file == probe_fixture(name)) {
                EXPECT_EQ(p.message, "plugin " + probe_fixture(name) + ": " + why);
                matched = true;
            }
        EXPECT_TRUE(matched) << p.message;
    }
}

TEST(PluginProbe, OneChildProbesAFolderAndTheCacheRemembersVerdicts) {
    // The crashing fixture among good ones: the probe resumes after it in a new child.
    const auto dir = cdrmix::test::scratch_dir("probe_folder");
    for (const char *name : {"good", "throws"})
        std::filesystem::copy_file(std::string(CDRMIX_FIXTURE_DIR) + "/libcdrmix-fixture-" + name + ".so",
                                   dir / (std::string("libcdrmix-fixture-") + name + ".so"));
    std::filesystem::copy_file(probe_fixture("crash_in_init"), dir / "libcdrmix-fixture-crash_in_init.so");
    auto probe = test_probe("folder");
    const std::vector<std::string> files = {(dir / "libcdrmix-fixture-crash_in_init.so").string(),
                                            (dir / "libcdrmix-fixture-good.so").string(),
                                            (dir / "libcdrmix-fixture-throws.so").string()};
    auto verdicts = probe.check(files);
    EXPECT_FALSE(verdicts[files[0]].safe);
    EXPECT_TRUE(verdicts[files[1]].safe); // probed after the crash, by a second child
    EXPECT_TRUE(verdicts[files[2]].safe); // refusing to register is the host's to report, not a crash
    EXPECT_TRUE(probe.warnings().empty());

    // From the cache: the crashing file stays refused without a child; a changed file is probed again.
    cdrmix::PluginProbe no_program("/nonexistent/cdrmix-plugin-probe",
                                   std::string(CDRMIX_PROBE_FIXTURE_DIR) + "/folder.json", 3);
    verdicts = no_program.check(files);
    EXPECT_FALSE(verdicts[files[0]].safe);
    EXPECT_EQ(verdicts[files[0]].why, "crashed while loading (SIGSEGV: Segmentation fault)");
    std::filesystem::copy_file(std::string(CDRMIX_FIXTURE_DIR) + "/libcdrmix-fixture-good.so", files[0],
                               std::filesystem::copy_options::overwrite_existing);
    EXPECT_NE(cdrmix::test::error_of([&] { no_program.check(files); }).find("cannot be started"), std::string::npos);
    EXPECT_TRUE(test_probe("folder2").check(files)[files[0]].safe);

    cdrmix::Registry registry;
    cdrmix::PluginLoader loader(registry, test_probe("folder3"));
    loader.load_directory(dir.string());
    EXPECT_TRUE(registry.has(PluginKind::Router, "fixture_good"));
}

TEST(PluginProbe, APluginPathThatIsAFileSaysSo) {
    cdrmix::Registry registry;
    cdrmix::PluginLoader loader(registry, std::nullopt);
    loader.load_all({std::string(CDRMIX_FIXTURE_DIR) + "/libcdrmix-fixture-good.so"});
    ASSERT_EQ(loader.problems().size(), 1u);
    EXPECT_NE(loader.problems()[0].message.find("is a file, not a folder"), std::string::npos)
        << loader.problems()[0].message;
}
