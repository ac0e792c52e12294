// Test entry point: loads the in-tree plugins (build/plugins) into the global
// registry once, as the host does, then runs every suite.
#include "core/plugin_loader.hpp"

#include <gtest/gtest.h>

#include <cstdio>

int main(int argc, char **argv) {
    // Before InitGoogleTest: the contract suites are instantiated over what is registered.
    cdrmix::PluginLoader loader(cdrmix::Registry::global());
    loader.load_all(cdrmix::PluginLoader::search_path({}));
    for (const auto &p : loader.problems()) std::fprintf(stderr, "plugin problem: %s\n", p.message.c_str());
    if (!loader.problems().empty()) return 1;
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
