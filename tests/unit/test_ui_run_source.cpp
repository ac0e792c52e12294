// Where `cdrmix gui --watch` and `cdrmix plot` find a run's records: a run
// folder or its metrics.jsonl, named after the folder; a missing folder or
// file is one message naming it; an oversized file is refused before reading.
#include <data/run_source.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>

using namespace cdrmix::ui;
namespace fs = std::filesystem;

namespace {
std::string message_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const std::runtime_error &e) {
        return e.what();
    }
    return "no error";
}
} // namespace

TEST(PlotRunSource, FoldersAndFilesAreNamedAfterTheRunFolder) {
    const fs::path dir = fs::temp_directory_path() / ("cdrmix-run-source-" + std::to_string(::getpid())) / "quick-20261207-101010";
    fs::create_directories(dir);
    std::ofstream(dir / "metrics.jsonl") << R"({"event":"run","dir":"x","name":"quick"})" << "\n"
                                         << R"({"event":"step","step":1,"loss":2.5})" << "\n"
                                         << "not json\n";
    for (const std::string &p : {dir.string(), dir.string() + "/", (dir / "metrics.jsonl").string()}) {
        const RunSource s = run_source(p);
        EXPECT_EQ(s.name, "quick-20261207-101010") << p;
        EXPECT_TRUE(fs::equivalent(s.metrics, dir / "metrics.jsonl")) << p;
    }
    int64_t bad = 0;
    const RunData run = read_run(run_source(dir.string()), &bad);
    EXPECT_EQ(run.run_name, "quick");
    EXPECT_EQ(run.loss.value, std::vector<double>{2.5});
    EXPECT_EQ(bad, 1);
    EXPECT_NE(message_of([&] { read_run(run_source(dir.string()), &bad, 10); }).find("more than the 10 a run's metrics may hold"),
              std::string::npos);
    EXPECT_EQ(message_of([&] { run_source((dir / "nope").string()); }), (dir / "nope").string() + ": no such file or directory");
    EXPECT_EQ(message_of([&] { run_source(dir.parent_path().string()); }),
              dir.parent_path().string() + ": no metrics.jsonl in that directory");
    fs::remove_all(dir.parent_path());
}
