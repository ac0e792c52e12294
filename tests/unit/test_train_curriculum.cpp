// The sequence-length curriculum: lengths by step, the trainer reading them, the config check.
#include "test_util.hpp"
#include "train/trainer.hpp"

#include <fstream>

namespace {

using cdrmix::Json;

cdrmix::TrainConfig curriculum(int64_t seq_len, int64_t start, int64_t warmup) {
    return cdrmix::TrainConfig::from_config(cdrmix::Config(
        Json{{"seq_len", seq_len}, {"seq_len_start", start}, {"seq_len_warmup_steps", warmup}}, "trainer", "test"));
}

TEST(TrainCurriculum, LengthRisesInMultiplesOfTheStart) {
    const auto c = curriculum(128, 32, 10);
    std::vector<int64_t> lengths;
    for (int64_t s = 0; s <= 11; ++s) lengths.push_back(c.train_seq_len(s));
    EXPECT_EQ(lengths, (std::vector<int64_t>{32, 32, 32, 32, 64, 64, 64, 96, 96, 96, 128, 128}));
    EXPECT_EQ(curriculum(128, 32, 0).train_seq_len(0), 128); // off
    EXPECT_EQ(curriculum(100, 32, 4).train_seq_len(3), 64);  // 32 + 68 * 3 / 4 = 83, down to a multiple of 32
}

TEST(TrainCurriculum, TrainerReadsTheScheduledLengths) {
    const auto dir = cdrmix::test::scratch_dir("train_curriculum");
    {
        std::ofstream out(dir / "corpus.txt");
        for (int i = 0; i < 80; ++i) out << "line " << i << " of a small corpus for the curriculum test\n";
    }
    auto data = cdrmix::Registry::global().create_data_source(cdrmix::Config(
        Json{{"type", "text"}, {"path", (dir / "corpus.txt").string()}, {"tokenizer", "byte"}}, "data", "test"));
    torch::manual_seed(1);
    auto model = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(cdrmix::test::tiny_model_spec(256), "test"),
                                                 cdrmix::Registry::global());
    cdrmix::TrainConfig c = cdrmix::TrainConfig::from_config(
        cdrmix::Config(Json{{"steps", 4}, {"batch_size", 2}, {"seq_len", 16}, {"seq_len_start", 8},
                            {"seq_len_warmup_steps", 3}, {"warmup_steps", 1}, {"eval_every", 0}, {"eval_batches", 1}},
                       "trainer", "test"));
    cdrmix::MetricsBus bus;
    cdrmix::Trainer trainer(model, data, c, bus, "");
    std::vector<int64_t> lengths;
    int64_t tokens = 0;
    cdrmix::TrainCallbacks cb;
    cb.on_step = [&](const Json &r) {
        lengths.push_back(r.at("seq_len").get<int64_t>());
        tokens = r.at("tokens").get<int64_t>();
        return true;
    };
    trainer.run(cb);
    EXPECT_EQ(lengths, (std::vector<int64_t>{8, 8, 8, 16}));
    EXPECT_EQ(tokens, 2 * 8 * 3 + 2 * 16);
}

TEST(TrainCurriculum, StartAboveSeqLenIsRefused) {
    const std::string e = cdrmix::test::error_of([] { curriculum(64, 128, 10); });
    EXPECT_NE(e.find("seq_len_start (128) must not exceed seq_len (64)"), std::string::npos) << e;
}

} // namespace
