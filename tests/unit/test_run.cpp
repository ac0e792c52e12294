// The Run object without Lua: folder names and layout, lazy creation, resume
// lookup, per-run metrics, and a failed start leaving nothing behind.
#include "core/files.hpp"
#include "run/run.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using cdrmix::Json;

namespace {

fs::path fresh_root(const std::string &name) {
    const fs::path p = fs::temp_directory_path() / ("cdrmix_run_test_" + name);
    cdrmix::remove_tree(p);
    return p;
}

cdrmix::RunSettings settings(const fs::path &root, const std::string &name) {
    cdrmix::RunSettings s;
    s.runs_root = root.string();
    s.name = name;
    return s;
}

} // namespace

TEST(RunFolder, NamesAndMatching) {
    std::tm t{};
    t.tm_year = 126, t.tm_mon = 0, t.tm_mday = 2, t.tm_hour = 3, t.tm_min = 4, t.tm_sec = 5;
    const std::time_t when = std::mktime(&t);
    EXPECT_EQ(cdrmix::run_folder::make("quick", when, 1), "quick-20260102-030405");
    EXPECT_EQ(cdrmix::run_folder::make("quick", when, 3), "quick-20260102-030405-3");
    EXPECT_TRUE(cdrmix::run_folder::is_run_of("quick-20260102-030405", "quick"));
    EXPECT_TRUE(cdrmix::run_folder::is_run_of("quick-20260102-030405-3", "quick"));
    EXPECT_FALSE(cdrmix::run_folder::is_run_of("quick-long-20260102-030405", "quick"));
    EXPECT_FALSE(cdrmix::run_folder::is_run_of("quick", "quick"));
}

TEST(Run, FolderIsMadeOnFirstUseWithItsLayout) {
    const fs::path root = fresh_root("layout");
    cdrmix::MetricsBus script_bus;
    auto seen = std::make_shared<cdrmix::QueueSink>();
    script_bus.add_sink(seen);
    cdrmix::Run run(settings(root, "exp"), &script_bus);
    EXPECT_FALSE(run.is_open());
    EXPECT_FALSE(fs::exists(root)); // nothing before the run starts
    run.set_own("train", {{"steps", 3}});
    const fs::path dir = run.open();
    EXPECT_EQ(run.open(), dir.string()); // once
    EXPECT_TRUE(cdrmix::run_folder::is_run_of(dir.filename().string(), "exp"));
    for (const char *f : {cdrmix::run_layout::config, cdrmix::run_layout::plugins, cdrmix::run_layout::metrics})
        EXPECT_TRUE(fs::is_regular_file(dir / f)) << f;
    EXPECT_TRUE(fs::is_directory(dir / cdrmix::run_layout::checkpoints));
    EXPECT_EQ(run.checkpoint_root(), (dir / "checkpoints").string());
    // The script's sections change as it goes (a data source made later); the run's own stay.
    run.set_own("resumed_from", "x");
    run.set_shared_config({{"data", {{"type", "text"}}}, {"script", "s.lua"}});
    std::ifstream config_file(dir / cdrmix::run_layout::config);
    const Json written = Json::parse(config_file);
    EXPECT_EQ(written["train"]["steps"], 3);
    EXPECT_EQ(written["resumed_from"], "x");
    EXPECT_EQ(written["data"]["type"], "text");
    run.bus().publish({{"event", "step"}, {"step", 1}});
    // The run's own metrics.jsonl and the script's sinks both get it.
    std::ifstream in(dir / "metrics.jsonl");
    int steps = 0;
    for (std::string line; std::getline(in, line);) steps += Json::parse(line).value("event", "") == "step";
    EXPECT_EQ(steps, 1);
    int forwarded = 0;
    for (const auto &r : seen->drain()) forwarded += r.value("event", "") == "step";
    EXPECT_EQ(forwarded, 1);
    // A second run of the same name in the same second gets its own folder.
    cdrmix::Run again(settings(root, "exp"), &script_bus);
    EXPECT_NE(again.open(), run.path());
}

TEST(Run, AbandonRemovesAFolderWithNothingInIt) {
    const fs::path root = fresh_root("abandon");
    cdrmix::Run empty(settings(root, "a"), nullptr);
    const std::string dir = empty.open();
    EXPECT_TRUE(empty.abandon_if_empty());
    EXPECT_FALSE(fs::exists(dir));
    cdrmix::Run stepped(settings(root, "b"), nullptr);
    const std::string kept = stepped.open();
    stepped.bus().publish({{"event", "step"}, {"step", 1}});
    EXPECT_FALSE(stepped.abandon_if_empty());
    EXPECT_TRUE(fs::exists(kept));
}

TEST(Run, ResumeFindsTheNewestCheckpointOfItsOwnName) {
    const fs::path root = fresh_root("resume");
    cdrmix::Run none(settings(root, "quick"), nullptr);
    EXPECT_EQ(none.find_resume(""), "");
    EXPECT_EQ(none.find_resume("auto"), ""); // no earlier run: a fresh start
    EXPECT_THROW(none.find_resume((root / "missing").string()), cdrmix::Error);

    // Two earlier runs of "quick" and one of "quick-long", each with a checkpoint.
    Json spec = {{"vocab_size", 11}, {"hidden_size", 16}, {"num_layers", 1},
                 {"mixer", {{"type", "rwkv7_time_mix"}, {"head_size", 8}}}};
    cdrmix::Model model(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    auto opt = cdrmix::make_adamw(model, 1e-3, 0.1, 0.9, 0.99, 1e-8);
    auto tok = cdrmix::make_char_tokenizer("abcdefghijk");
    const fs::path older = root / "quick-20260101-120000", newer = root / "quick-20260101-130000-2",
                   other = root / "quick-long-20260102-120000";
    for (const auto &run : {older, other, newer}) // written in this order: `newer` is the newest of "quick"
        cdrmix::save_checkpoint((run / "checkpoints").string(), 1, model, *opt, *tok, Json{{"step", 1}});
    cdrmix::Run quick(settings(root, "quick"), nullptr);
    EXPECT_EQ(quick.find_resume("auto"), fs::canonical(newer / "checkpoints/step-000001").string());
    cdrmix::Run quick_long(settings(root, "quick-long"), nullptr);
    EXPECT_EQ(quick_long.find_resume("auto"), fs::canonical(other / "checkpoints/step-000001").string());
    EXPECT_EQ(quick.find_resume(older.string()), fs::canonical(older / "checkpoints/step-000001").string());
}
