// The one atomic-write helper: contents land whole, nothing temporary is left
// behind, and every failure (no folder, a full or size-limited file) throws
// naming the target while leaving it as it was.
#include "core/files.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

class AtomicFile : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("cdrmix_atomic_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        cdrmix::remove_tree(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { cdrmix::remove_tree(dir_); }

    std::string path(const std::string &name) const { return (dir_ / name).string(); }
    std::vector<std::string> entries() const {
        std::vector<std::string> names;
        for (const auto &e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }
    static std::string read(const std::string &file) {
        std::ifstream in(file, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

    fs::path dir_;
};

// Expects f() to throw a cdrmix::Error whose message starts with "<target>: cannot write: ".
template <class F> void expect_write_error(const std::string &target, F f) {
    try {
        f();
        FAIL() << "no error";
    } catch (const cdrmix::Error &e) {
        EXPECT_EQ(std::string(e.what()).rfind(target + ": cannot write: ", 0), 0u) << e.what();
    }
}

TEST_F(AtomicFile, WritesContentsAndLeavesNoTemporaryFile) {
    cdrmix::write_file_atomic(path("a.txt"), "first");
    cdrmix::write_file_atomic(path("a.txt"), "second");
    cdrmix::write_json_atomic(path("b.json"), cdrmix::Json{{"k", 1}});
    EXPECT_EQ(read(path("a.txt")), "second");
    EXPECT_EQ(read(path("b.json")), "{\n  \"k\": 1\n}\n");
    EXPECT_EQ(entries(), (std::vector<std::string>{"a.txt", "b.json"}));
}

TEST_F(AtomicFile, StreamAppearsOnlyOnCommit) {
    const std::string big(3 << 20, 'x'); // larger than the writer's buffer
    cdrmix::AtomicFileWriter out(path("s.bin"));
    out.write("head ");
    out.write(big);
    out.write(" tail");
    EXPECT_FALSE(fs::exists(path("s.bin")));
    out.commit();
    EXPECT_EQ(read(path("s.bin")), "head " + big + " tail");
    EXPECT_EQ(entries(), (std::vector<std::string>{"s.bin"}));
}

TEST_F(AtomicFile, StreamDestroyedWithoutCommitLeavesNothing) {
    {
        cdrmix::AtomicFileWriter out(path("s.bin"));
        out.write("abandoned");
    }
    EXPECT_TRUE(entries().empty());
}

TEST_F(AtomicFile, MissingFolderThrowsNamingThePath) {
    const std::string target = path("no/such/folder/a.json");
    expect_write_error(target, [&] { cdrmix::write_json_atomic(target, cdrmix::Json::object()); });
    expect_write_error("/proc/cdrmix.json", [] { cdrmix::write_file_atomic("/proc/cdrmix.json", "x"); });
    EXPECT_TRUE(entries().empty());
}

// A write the file system refuses halfway (here: the file-size limit, as a full
// disk would) leaves the old contents and no temporary file.
TEST_F(AtomicFile, FailedWriteKeepsTheOldFile) {
    cdrmix::write_file_atomic(path("a.txt"), "old");
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
    auto *saved_handler = std::signal(SIGXFSZ, SIG_IGN); // EFBIG instead of a signal
    rlimit small = saved;
    small.rlim_cur = 4096;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    expect_write_error(path("a.txt"), [&] { cdrmix::write_file_atomic(path("a.txt"), std::string(1 << 20, 'y')); });
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, saved_handler);
    EXPECT_EQ(read(path("a.txt")), "old");
    EXPECT_EQ(entries(), (std::vector<std::string>{"a.txt"}));
}

} // namespace
