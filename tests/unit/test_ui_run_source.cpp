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

// A folder of runs (runs/, or a sweep's DIR/point-NNN/<run>/) opens as every run in it, sorted; a
// sweep's runs are named by their grid point; a folder with no run is run_source's message.
TEST(PlotRunSource, FoldersOfRunsOpenEveryRunInThem) {
    const fs::path root = fs::temp_directory_path() / ("cdrmix-run-sources-" + std::to_string(::getpid()));
    auto make_run = [](const fs::path &dir) {
        fs::create_directories(dir);
        std::ofstream(dir / "metrics.jsonl") << R"({"event":"step","step":1,"loss":1})" << "\n";
    };
    make_run(root / "sweep" / "point-002" / "tiny-20261207-101011");
    make_run(root / "sweep" / "point-001" / "tiny-20261207-101010");
    fs::create_directories(root / "sweep" / "point-003"); // a point whose run failed to start
    std::ofstream(root / "sweep" / "summary.csv") << "point\n";
    const auto sweep = run_sources((root / "sweep").string());
    ASSERT_EQ(sweep.size(), 2u);
    EXPECT_EQ(sweep[0].name, "point-001");
    EXPECT_EQ(sweep[1].name, "point-002");
    EXPECT_TRUE(fs::equivalent(sweep[1].metrics, root / "sweep" / "point-002" / "tiny-20261207-101011" / "metrics.jsonl"));

    make_run(root / "runs" / "b-20261207-101010");
    make_run(root / "runs" / "a-20261207-101010");
    const auto runs = run_sources((root / "runs").string());
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0].name, "a-20261207-101010");
    EXPECT_EQ(runs[1].name, "b-20261207-101010");
    // A run folder itself is one run, as run_source reads it.
    const auto one = run_sources((root / "runs" / "a-20261207-101010").string());
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].name, "a-20261207-101010");

    fs::create_directories(root / "empty" / "nothing");
    EXPECT_EQ(message_of([&] { run_sources((root / "empty").string()); }),
              (root / "empty").string() + ": no metrics.jsonl in that directory");
    fs::remove_all(root);
}
