// The text data source: splits, determinism, resumable position, rank shards, errors.
#include "test_util.hpp"

#include <cdrmix/error.hpp>

#include <filesystem>
#include <fstream>

using cdrmix::Json;
using cdrmix::Split;

namespace {

std::string write_corpus(const std::string &name, const std::string &text) {
    const auto dir = std::filesystem::temp_directory_path() / "cdrmix_data_test";
    std::filesystem::create_directories(dir);
    const auto path = dir / name;
    std::ofstream(path) << text;
    return path.string();
}

std::shared_ptr<cdrmix::DataSource> text_source(const Json &extra) {
    Json cfg = {{"type", "text"}};
    for (auto it = extra.begin(); it != extra.end(); ++it) cfg[it.key()] = it.value();
    return cdrmix::Registry::global().create_data_source(cdrmix::Config(cfg, "data", "test.lua"));
}

std::string corpus() {
    std::string s;
    for (int i = 0; i < 200; ++i) s += "line " + std::to_string(i) + ": the quick brown fox\n";
    return s;
}

} // namespace

TEST(TextData, BatchesAreWindowsOfTheRightSplit) {
    const std::string text = corpus();
    auto d = text_source({{"path", write_corpus("c.txt", text)}, {"val_fraction", 0.25}});
    EXPECT_EQ(d->num_tokens(Split::Train) + d->num_tokens(Split::Val), static_cast<int64_t>(text.size()));
    torch::Tensor b = d->next_batch(Split::Train, 4, 16);
    EXPECT_EQ(b.sizes(), (std::vector<int64_t>{4, 17}));
    // Each row decodes to a contiguous piece of the training part of the corpus.
    auto tok = d->tokenizer();
    const std::string train_text = text.substr(0, static_cast<size_t>(d->num_tokens(Split::Train)));
    for (int64_t i = 0; i < 4; ++i) {
        auto row = b[i].contiguous();
        std::string s = tok->decode(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 17));
        EXPECT_NE(train_text.find(s), std::string::npos) << s;
    }
}

TEST(TextData, PositionRestoresTheSameStream) {
    const std::string path = write_corpus("c.txt", corpus());
    auto a = text_source({{"path", path}});
    for (int i = 0; i < 3; ++i) a->next_batch(Split::Train, 2, 8);
    Json pos = a->position();
    torch::Tensor next = a->next_batch(Split::Train, 2, 8);
    auto b = text_source({{"path", path}});
    b->restore(pos);
    EXPECT_TRUE(torch::equal(b->next_batch(Split::Train, 2, 8), next));
    // Val restarts from its beginning on reset, so every eval sees the same batches.
    torch::Tensor v1 = a->next_batch(Split::Val, 2, 8);
    a->reset(Split::Val);
    EXPECT_TRUE(torch::equal(a->next_batch(Split::Val, 2, 8), v1));
}

TEST(TextData, RanksReadDifferentShards) {
    const std::string path = write_corpus("c.txt", corpus());
    auto r0 = text_source({{"path", path}, {"rank", 0}, {"world_size", 2}});
    auto r1 = text_source({{"path", path}, {"rank", 1}, {"world_size", 2}});
    EXPECT_FALSE(torch::equal(r0->next_batch(Split::Train, 2, 8), r1->next_batch(Split::Train, 2, 8)));
}

TEST(TextData, Errors) {
    auto message = [](const Json &cfg) {
        try {
            text_source(cfg);
        } catch (const cdrmix::Error &e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(message({{"path", "/nonexistent/corpus.txt"}}).find("no text files at '/nonexistent/corpus.txt'"),
              std::string::npos);
    EXPECT_NE(message({{"path", write_corpus("empty.txt", "")}}).find("is empty"), std::string::npos);
    EXPECT_NE(message({{"path", write_corpus("c.txt", "abc")}, {"tokenizer", "bpe"}}).find("key 'tokenizer'"),
              std::string::npos);
    auto tiny = text_source({{"path", write_corpus("t.txt", "abcdefghij")}});
    EXPECT_THROW(tiny->next_batch(Split::Val, 1, 8), cdrmix::Error); // val split has 1 token
}
