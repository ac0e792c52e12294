// What `cdrmix replay` names when a run's recorded environment and plugins
// differ from the replay's: each changed field, a changed plugin file, a plugin
// missing or added; malformed records count as differences, never crash.
#include "run/environment.hpp"

#include <gtest/gtest.h>

using namespace cdrmix;
using cdrmix::run_environment::differences;

namespace {

Json env(int threads, const std::string &torch) {
    return {{"cdrmix", "0.1.0"}, {"libtorch", torch}, {"threads", threads}, {"device", "cpu"},
            {"cpu_kernels", "avx512"}, {"torch_seed", 0}, {"world_size", 1}, {"cwd", "/somewhere"}};
}

Json plugin(const std::string &name, const std::string &crc, int size = 100) {
    return {{"name", name}, {"version", "0.1.0"}, {"file", "/p/lib" + name + ".so"}, {"size", size}, {"crc32c", crc}};
}

} // namespace

TEST(ReplayEnvironment, AlikeHasNoDifferencesEvenInAnotherFolder) {
    Json moved = env(2, "1.13.1");
    moved["cwd"] = "/elsewhere";
    const Json plugins = Json::array({plugin("topk", "0000abcd")});
    EXPECT_TRUE(differences(env(2, "1.13.1"), plugins, moved, plugins).empty());
}

TEST(ReplayEnvironment, NamesThreadsLibTorchAndAChangedPluginFile) {
    const auto d = differences(env(1, "1.13.1"), Json::array({plugin("topk", "0000abcd"), plugin("moe", "11111111")}),
                               env(2, "2.1.0"), Json::array({plugin("topk", "0000abce"), plugin("moe", "11111111")}));
    ASSERT_EQ(d.size(), 3u);
    EXPECT_EQ(d[0], "libtorch: 1.13.1 recorded, 2.1.0 now");
    EXPECT_EQ(d[1], "threads: 1 recorded, 2 now");
    EXPECT_EQ(d[2], "plugin topk (/p/libtopk.so): file changed: CRC-32C 0000abcd, 100 bytes recorded; 0000abce, 100 bytes now");
}

TEST(ReplayEnvironment, MissingAddedAndMalformedPluginsAreNamed) {
    const auto d = differences(env(1, "1.13.1"), Json::array({plugin("topk", "1"), 7, Json::object()}), Json("junk"),
                               Json::array({plugin("sinkhorn", "2")}));
    EXPECT_EQ(d.front(), "cdrmix: 0.1.0 recorded, (not recorded) now");
    EXPECT_NE(std::find(d.begin(), d.end(), "plugin topk (/p/libtopk.so): recorded, not loaded now"), d.end());
    EXPECT_NE(std::find(d.begin(), d.end(), "plugin sinkhorn (/p/libsinkhorn.so): loaded now, not recorded"), d.end());
}
