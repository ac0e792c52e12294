// The chat source's packing = "bucket": rows that start at a conversation's
// start, masked pads, the split rule for long conversations worked by hand,
// less padding than one bucket, exact resume, ranks' shares, the trainer and
// eval over batches whose length varies, and the config errors.
#include "metrics/metrics.hpp"
#include "test_util.hpp"
#include "train/trainer.hpp"

#include <cdrmix/chat.hpp>
#include <cdrmix/loss_mask.hpp>

#include <fstream>
#include <set>

namespace {

namespace fs = std::filesystem;
using cdrmix::Json;
using cdrmix::Split;

std::shared_ptr<cdrmix::DataSource> make_source(const Json &cfg) {
    return cdrmix::Registry::global().create_data_source(cdrmix::Config(cfg, "data", "test"));
}

Json conversation(int i) {
    const std::string answer(size_t(1 + (i * 7) % 23), char('a' + i % 26));
    return {{"messages",
             {{{"role", "user"}, {"content", "say " + std::to_string(i)}}, {{"role", "assistant"}, {"content", answer}}}}};
}

// n conversations of 38 to 61 byte tokens; returns the file (and their rendered texts).
std::string write_conversations(const fs::path &path, int n, std::set<std::string> *texts = nullptr) {
    const auto tmpl = cdrmix::chat_template_from_spec("cdrmix", "test");
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < n; ++i) {
        out << conversation(i).dump() << "\n";
        std::string text;
        for (const auto &s : cdrmix::render_conversation(tmpl, cdrmix::parse_conversation(conversation(i), "test"), true))
            text += s.text;
        if (texts) texts->insert(text);
    }
    return path.string();
}

Json bucketed(const std::string &train, const std::string &val, Json buckets) {
    return {{"type", "chat"}, {"path", train}, {"val_path", val}, {"packing", "bucket"}, {"buckets", std::move(buckets)}};
}

// The row's tokens up to its padding (pads are token 0; no byte 0 is in the text).
std::string row_text(const at::Tensor &row) {
    std::string s;
    for (int64_t t = 0; t < row.size(0) && row[t].item<int64_t>() != 0; ++t) s += char(row[t].item<int64_t>());
    return s;
}

TEST(ChatBuckets, RowsAreWholeConversationsInTheirBucketWithPadsMasked) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_buckets_rows");
    std::set<std::string> texts;
    const std::string train = write_conversations(dir / "train.jsonl", 30, &texts);
    const std::vector<int64_t> buckets = {44, 52, 64};
    auto data = make_source(bucketed(train, write_conversations(dir / "val.jsonl", 4), buckets));
    std::set<int64_t> lengths;
    for (int k = 0; k < 20; ++k) {
        const at::Tensor batch = data->next_batch(Split::Train, 4, 64), mask = cdrmix::last_loss_mask(*data);
        const int64_t T = batch.size(1) - 1;
        const auto b = std::find(buckets.begin(), buckets.end(), T);
        ASSERT_TRUE(b != buckets.end()) << "T " << T;
        ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{4, T}));
        lengths.insert(T);
        for (int64_t i = 0; i < 4; ++i) {
            const std::string text = row_text(batch[i]);
            EXPECT_TRUE(texts.count(text)) << "row " << i << " is not a whole conversation: " << text;
            EXPECT_EQ(text.rfind("<|user|>\n", 0), 0u) << "a row starts at the conversation's start";
            const auto n = int64_t(text.size());
            EXPECT_LE(n - 1, T);
            if (b != buckets.begin()) EXPECT_GT(n - 1, *(b - 1)) << "the smallest bucket that holds it";
            EXPECT_EQ(mask[i].slice(0, n - 1).sum().item<float>(), 0) << "pads have no loss";
            EXPECT_GT(mask[i].sum().item<float>(), 0);
        }
    }
    EXPECT_EQ(lengths.size(), 3u) << "every bucket is drawn";
}

TEST(ChatBuckets, LongConversationIsCutAndPiecesWithoutLossAreDropped) {
    // Rendered: "<|system|>\nBe brief.\n<|user|>\n2+3?\n<|assistant|>\n5<|end|>\n", 58 byte
    // tokens, loss on 49..57 ("5<|end|>\n"). With buckets [16] the pieces start at 0,
    // 16, 32, 48; only [48, 58) holds a target with loss (49..57).
    const fs::path dir = cdrmix::test::scratch_dir("chat_buckets_cut");
    std::ofstream(dir / "c.jsonl")
        << R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]})"
        << "\n";
    const std::string path = (dir / "c.jsonl").string();
    auto data = make_source(bucketed(path, path, {16}));
    const at::Tensor batch = data->next_batch(Split::Train, 2, 16), mask = cdrmix::last_loss_mask(*data);
    ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{2, 17}));
    for (int64_t i = 0; i < 2; ++i) { // the one row, twice (the bucket's second epoch)
        EXPECT_EQ(row_text(batch[i]), "\n5<|end|>\n");
        EXPECT_EQ(batch[i].slice(0, 10, 17).count_nonzero().item<int64_t>(), 0) << "pads are 0";
        EXPECT_TRUE(mask[i].equal(torch::cat({torch::ones({9}), torch::zeros({7})}))) << mask[i];
    }
}

double padding_share(const std::shared_ptr<cdrmix::DataSource> &data, int batches) {
    double pads = 0, all = 0;
    for (int k = 0; k < batches; ++k) {
        const at::Tensor targets = data->next_batch(Split::Train, 4, 64).slice(1, 1);
        pads += double(targets.eq(0).sum().item<int64_t>());
        all += double(targets.numel());
    }
    return pads / all;
}

TEST(ChatBuckets, BucketsPadLessThanOneBucket) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_buckets_padding");
    const std::string train = write_conversations(dir / "train.jsonl", 60), val = write_conversations(dir / "val.jsonl", 4);
    const double one = padding_share(make_source(bucketed(train, val, {64})), 30);
    const double several = padding_share(make_source(bucketed(train, val, {40, 44, 48, 52, 56, 60, 64})), 30);
    EXPECT_GT(one, 0.1);
    EXPECT_LT(several, one / 2) << "padding " << several << " with buckets, " << one << " without";
}

TEST(ChatBuckets, RestoredPositionGivesTheSameBatches) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_buckets_resume");
    const Json cfg = bucketed(write_conversations(dir / "train.jsonl", 40), write_conversations(dir / "val.jsonl", 6),
                              {24, 40, 64});
    auto data = make_source(cfg);
    for (int k = 0; k < 7; ++k) data->next_batch(Split::Train, 3, 64); // into the buckets' second epochs
    data->next_batch(Split::Val, 2, 64);
    const Json saved = Json::parse(data->position().dump());
    auto draw = [](cdrmix::DataSource &d) {
        std::vector<at::Tensor> out;
        for (int k = 0; k < 6; ++k) {
            out.push_back(d.next_batch(k % 3 ? Split::Train : Split::Val, 3, 64));
            out.push_back(cdrmix::last_loss_mask(d));
        }
        return out;
    };
    const auto first = draw(*data);
    std::set<int64_t> lengths;
    for (size_t i = 0; i < first.size(); i += 2) lengths.insert(first[i].size(1));
    EXPECT_GT(lengths.size(), 1u) << "the batches' lengths vary";
    auto fresh = make_source(cfg);
    fresh->restore(saved);
    data->restore(saved);
    for (auto *d : {data.get(), fresh.get()}) {
        const auto again = draw(*d);
        ASSERT_EQ(again.size(), first.size());
        for (size_t i = 0; i < first.size(); ++i) EXPECT_TRUE(again[i].equal(first[i])) << "tensor " << i;
    }

    Json window = cfg;
    window.erase("buckets");
    window["packing"] = "window";
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(window)->restore(saved); }).find("other packing or buckets"),
              std::string::npos);
    Json other = cfg;
    other["buckets"] = {24, 64};
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(other)->restore(saved); }).find("other packing or buckets"),
              std::string::npos);
}

TEST(ChatBuckets, RanksReadDisjointRowsInBatchesOfTheSameLength) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_buckets_ranks");
    std::set<std::string> texts;
    const std::string train = write_conversations(dir / "train.jsonl", 30, &texts);
    const std::string val = write_conversations(dir / "val.jsonl", 4);
    auto rank = [&](int r, Json buckets) {
        Json cfg = bucketed(train, val, std::move(buckets));
        cfg["rank"] = r;
        cfg["world_size"] = 2;
        return make_source(cfg);
    };
    // One bucket: 15 rows per rank per pass, and the two passes together read every conversation once.
    auto r0 = rank(0, {64}), r1 = rank(1, {64});
    std::set<std::string> read;
    for (int k = 0; k < 15; ++k)
        for (auto *d : {r0.get(), r1.get()}) read.insert(row_text(d->next_batch(Split::Train, 1, 64)[0]));
    EXPECT_EQ(read, texts);
    // Several buckets: every rank draws the same bucket for the same batch.
    auto b0 = rank(0, {44, 52, 64}), b1 = rank(1, {44, 52, 64});
    for (int k = 0; k < 10; ++k)
        EXPECT_EQ(b0->next_batch(Split::Train, 2, 64).size(1), b1->next_batch(Split::Train, 2, 64).size(1)) << k;
}

TEST(ChatBuckets, TrainerAndEvalTakeBatchesOfVaryingLength) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_buckets_trainer");
    auto data = make_source(bucketed(write_conversations(dir / "train.jsonl", 40),
                                     write_conversations(dir / "val.jsonl", 8), {24, 40, 64}));
    torch::manual_seed(5);
    auto model = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(cdrmix::test::tiny_model_spec(256), "test"),
                                                 cdrmix::Registry::global());
    const auto c = cdrmix::TrainConfig::from_config(
        cdrmix::Config(Json{{"steps", 6}, {"batch_size", 2}, {"grad_accum", 2}, {"seq_len", 64}, {"warmup_steps", 1},
                            {"eval_every", 6}, {"eval_batches", 3}, {"lr", 1e-2}},
                       "trainer", "test"));
    cdrmix::MetricsBus bus;
    cdrmix::Trainer trainer(model, data, c, bus, "");
    std::set<int64_t> tokens;
    int evals = 0;
    cdrmix::TrainCallbacks cb;
    cb.on_step = [&](const Json &r) {
        EXPECT_TRUE(std::isfinite(r["loss"].get<double>()));
        EXPECT_GT(r["loss_tokens"].get<int64_t>(), 0);
        tokens.insert(r["tokens"].get<int64_t>());
        return true;
    };
    cb.on_eval = [&](const Json &r) {
        EXPECT_TRUE(std::isfinite(r["val_loss"].get<double>()));
        EXPECT_GT(r["val_tokens"].get<int64_t>(), 0);
        return ++evals, true;
    };
    trainer.run(cb);
    EXPECT_EQ(evals, 1);
    EXPECT_GT(tokens.size(), 1u) << "steps of different lengths";
}

TEST(ChatBuckets, BadSettingsAreOneLineNamingTheKey) {
    const fs::path dir = cdrmix::test::scratch_dir("chat_buckets_errors");
    const std::string train = write_conversations(dir / "train.jsonl", 10), val = write_conversations(dir / "val.jsonl", 2);
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(bucketed(train, val, {64, 32})); })
                  .find("'buckets' must be strictly increasing"),
              std::string::npos);
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(bucketed(train, val, {0})); }).find("is not a row length"),
              std::string::npos);
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(bucketed(train, val, {128}))->next_batch(Split::Train, 2, 64); })
                  .find("bucket 128 is longer than seq_len 64"),
              std::string::npos);
    const Json text = {{"weight", 1}, {"type", "text"}, {"path", train}, {"tokenizer", "byte"}};
    Json member = bucketed(train, val, {64});
    member["weight"] = 1;
    EXPECT_NE(cdrmix::test::error_of([&] {
                  make_source({{"type", "mix"}, {"sources", {text, member}}})->next_batch(Split::Train, 8, 128);
              }).find("where the mix needs"),
              std::string::npos);
    Json window = bucketed(train, val, {64});
    window["packing"] = "window";
    EXPECT_NE(cdrmix::test::error_of([&] { make_source(window); }).find("'buckets' is read only with packing = \"bucket\""),
              std::string::npos);
}

} // namespace
