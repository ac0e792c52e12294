// The mix data source: shares converge to the weights, resume is exact, members
// must share a tokenizer; the trainer reports shares and per-source val losses.
#include "metrics/metrics.hpp"
#include "metrics/record_fields.hpp"
#include "test_util.hpp"
#include "train/trainer.hpp"

#include <cdrmix/data_mixture.hpp>

#include <fstream>

namespace {

namespace fs = std::filesystem;
using cdrmix::Json;
using cdrmix::Split;

std::string write_corpus(const fs::path &dir, const std::string &name, const std::string &text) {
    const fs::path p = dir / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
}

std::shared_ptr<cdrmix::DataSource> make_source(const Json &cfg) {
    return cdrmix::Registry::global().create_data_source(cdrmix::Config(cfg, "data", "test"));
}

// Two byte-level text sources, one of only 'a', one of only 'b': each row tells its source.
Json ab_mix(const fs::path &dir, double wa, double wb, int64_t seed) {
    const std::string a = write_corpus(dir, "a.txt", std::string(5000, 'a'));
    const std::string b = write_corpus(dir, "b.txt", std::string(5000, 'b'));
    return {{"type", "mix"},
            {"seed", seed},
            {"sources",
             {{{"weight", wa}, {"type", "text"}, {"path", a}, {"tokenizer", "byte"}},
              {{"weight", wb}, {"name", "bees"}, {"type", "text"}, {"path", b}, {"tokenizer", "byte"}}}}};
}

TEST(DataMix, SharesConvergeToTheWeights) {
    const fs::path dir = cdrmix::test::scratch_dir("mix_shares");
    auto data = make_source(ab_mix(dir, 0.7, 0.3, 11));
    auto *mix = dynamic_cast<cdrmix::DataMixture *>(data.get());
    ASSERT_NE(mix, nullptr);
    int64_t a_rows = 0, rows = 0;
    bool mixed_batch = false;
    for (int i = 0; i < 500; ++i) {
        const auto batch = data->next_batch(Split::Train, 16, 8);
        ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{16, 9}));
        const int64_t a = (batch.select(1, 0) == 'a').sum().item<int64_t>();
        // Every row is all one source's token.
        EXPECT_EQ((batch == 'a').sum().item<int64_t>() + (batch == 'b').sum().item<int64_t>(), 16 * 9);
        EXPECT_EQ((batch == 'a').sum().item<int64_t>(), a * 9);
        mixed_batch = mixed_batch || (a > 0 && a < 16);
        a_rows += a;
        rows += 16;
    }
    EXPECT_TRUE(mixed_batch); // rows, not whole batches, are drawn
    const auto members = mix->members();
    ASSERT_EQ(members.size(), 2u);
    EXPECT_EQ(members[0].name, "text");
    EXPECT_EQ(members[1].name, "bees");
    EXPECT_DOUBLE_EQ(members[0].weight, 0.7);
    EXPECT_EQ(members[0].train_rows, a_rows);
    EXPECT_EQ(members[1].train_rows, rows - a_rows);
    EXPECT_NEAR(double(a_rows) / double(rows), 0.7, 0.02);
    // Val rows are drawn by weight too, apart from the train draws.
    int64_t val_a = 0;
    for (int i = 0; i < 100; ++i) val_a += (data->next_batch(Split::Val, 16, 8).select(1, 0) == 'a').sum().item<int64_t>();
    EXPECT_NEAR(double(val_a) / 1600.0, 0.7, 0.04);
    EXPECT_EQ(mix->members()[0].train_rows, a_rows);
}

TEST(DataMix, SameSeedSameBatchesAndResumesExactly) {
    const fs::path dir = cdrmix::test::scratch_dir("mix_resume");
    std::string text;
    for (int i = 0; i < 400; ++i) text += "line " + std::to_string(i) + " of the first corpus\n";
    const std::string first = write_corpus(dir, "first.txt", text);
    const std::string second = write_corpus(dir, "second.txt", text.substr(0, 3000) + "ZZZ second");
    const Json cfg = {{"type", "mix"},
                      {"seed", 5},
                      {"sources",
                       {{{"weight", 2}, {"type", "text"}, {"path", first}, {"tokenizer", "byte"}},
                        {{"weight", 1}, {"type", "text"}, {"path", second}, {"tokenizer", "byte"}, {"seed", 9}}}}};
    auto run = make_source(cfg);
    for (int i = 0; i < 7; ++i) run->next_batch(Split::Train, 5, 12);
    run->next_batch(Split::Val, 3, 12);
    const Json saved = run->position();
    EXPECT_EQ(saved["members"][0]["name"], "text1"); // repeated types are numbered
    std::vector<at::Tensor> expected;
    for (int i = 0; i < 6; ++i) expected.push_back(run->next_batch(Split::Train, 5, 12));
    const at::Tensor expected_val = run->next_batch(Split::Val, 3, 12);

    auto resumed = make_source(cfg);
    resumed->restore(Json::parse(saved.dump())); // through text, as a checkpoint stores it
    for (int i = 0; i < 6; ++i) EXPECT_TRUE(resumed->next_batch(Split::Train, 5, 12).equal(expected[static_cast<size_t>(i)])) << i;
    EXPECT_TRUE(resumed->next_batch(Split::Val, 3, 12).equal(expected_val));
    EXPECT_EQ(resumed->position(), run->position());

    auto other_seed = cfg;
    other_seed["seed"] = 6;
    auto fresh = make_source(cfg), reseeded = make_source(other_seed);
    bool differs = false;
    auto again = make_source(cfg);
    for (int i = 0; i < 6; ++i) {
        const auto a = fresh->next_batch(Split::Train, 5, 12);
        EXPECT_TRUE(a.equal(again->next_batch(Split::Train, 5, 12)));
        differs = differs || !a.equal(reseeded->next_batch(Split::Train, 5, 12));
    }
    EXPECT_TRUE(differs);

    Json wrong = saved;
    wrong["members"][1]["name"] = "other";
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(cfg)->restore(wrong); }).find("saved source 1 is 'other'"),
              std::string::npos);
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(cfg)->restore(Json{{"source", "bin"}}); }).find("not a mix"),
              std::string::npos);
}

TEST(DataMix, RefusesMismatchedTokenizersInOneLine) {
    const fs::path dir = cdrmix::test::scratch_dir("mix_tokenizers");
    const std::string a = write_corpus(dir, "a.txt", "some text for the char tokenizer\n");
    const Json cfg = {{"type", "mix"},
                      {"sources",
                       {{{"weight", 1}, {"type", "text"}, {"path", a}, {"tokenizer", "char"}},
                        {{"weight", 1}, {"type", "text"}, {"path", a}, {"tokenizer", "byte"}}}}};
    const std::string e = cdrmix::test::error_of([&] { make_source(cfg); });
    EXPECT_NE(e.find("source 'text2' has another tokenizer (byte, 256 tokens) than 'text1'"), std::string::npos) << e;
    EXPECT_NE(e.find("must share one tokenizer"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);

    Json no_weight = cfg;
    no_weight["sources"][1].erase("weight");
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(no_weight); }).find("sources[2] needs a 'weight' > 0"),
              std::string::npos);
    Json typo = cfg;
    typo["sources"][1]["tokenizer"] = "char";
    typo["sources"][1]["val_fractoin"] = 0.2;
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(typo); }).find("val_fraction"), std::string::npos);
}

TEST(DataMix, TrainerRecordsSharesAndPerSourceValLoss) {
    const fs::path dir = cdrmix::test::scratch_dir("mix_trainer");
    auto data = make_source(ab_mix(dir, 0.5, 0.5, 3));
    torch::manual_seed(1);
    auto model = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(cdrmix::test::tiny_model_spec(256), "test"),
                                                 cdrmix::Registry::global());
    cdrmix::TrainConfig c = cdrmix::TrainConfig::defaults();
    c.steps = 3;
    c.batch_size = 4;
    c.seq_len = 8;
    c.eval_every = 3;
    c.eval_batches = 1;
    c.schedule.warmup_steps = 1;
    c.schedule.total_steps = 3;
    cdrmix::MetricsBus bus;
    cdrmix::Trainer trainer(model, data, c, bus, "");
    Json last_step, eval;
    cdrmix::TrainCallbacks cb;
    cb.on_step = [&](const Json &r) {
        last_step = r;
        return true;
    };
    cb.on_eval = [&](const Json &r) {
        eval = r;
        return true;
    };
    trainer.run(cb);
    namespace f = cdrmix::fields;
    const auto members = dynamic_cast<cdrmix::DataMixture &>(*data).members();
    const Json &share = last_step.at(f::step::data_share);
    EXPECT_DOUBLE_EQ(share.at("text").get<double>(), double(members[0].train_rows) / 12.0);
    EXPECT_DOUBLE_EQ(share.at("text").get<double>() + share.at("bees").get<double>(), 1.0);
    const Json &by_source = eval.at(f::eval::val_loss_by_source);
    ASSERT_EQ(by_source.size(), 2u);
    EXPECT_GT(by_source.at("text").get<double>(), 0.0);
    EXPECT_GT(by_source.at("bees").get<double>(), 0.0);
}

} // namespace
