// The jsonl, bin and synthetic data sources (and text, where the contract is
// shared): exact read-back, errors naming file:line or file and sizes,
// sharding across ranks, shuffling, and position save/restore.
#include "core/files.hpp"
#include "test_util.hpp"

#include <cdrmix/data_paths.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/token_sequence.hpp>
#include <cdrmix/window_source.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <unistd.h>

using cdrmix::Json;
using cdrmix::Split;
namespace fs = std::filesystem;

using cdrmix::test::error_of;

namespace {

fs::path temp_dir(const std::string &name) {
    const fs::path dir = fs::temp_directory_path() / ("cdrmix_formats_" + std::to_string(::getpid())) / name;
    cdrmix::remove_tree(dir);
    fs::create_directories(dir);
    return dir;
}

std::string write_text(const fs::path &path, const std::string &text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
}

std::string write_tokens(const fs::path &path, const std::vector<int64_t> &ids, cdrmix::TokenDtype dtype) {
    cdrmix::TokenFileWriter w(path.string(), dtype);
    w.write(ids);
    w.commit();
    return path.string();
}

std::shared_ptr<cdrmix::DataSource> source(const Json &cfg) {
    return cdrmix::Registry::global().create_data_source(cdrmix::Config(cfg, "data", "test.lua"));
}

std::vector<int64_t> row(const torch::Tensor &batch, int64_t i) {
    auto r = batch[i].contiguous();
    return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

std::vector<int64_t> iota(int64_t n, int64_t from = 0) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = from + i;
    return v;
}

// The expected sequences of a token stream: stride T, T + 1 tokens each.
std::vector<std::vector<int64_t>> windows(const std::vector<int64_t> &stream, int64_t T) {
    std::vector<std::vector<int64_t>> out;
    for (int64_t w = 0; w < (static_cast<int64_t>(stream.size()) - 1) / T; ++w)
        out.emplace_back(stream.begin() + w * T, stream.begin() + w * T + T + 1);
    return out;
}

std::vector<std::vector<int64_t>> first(const std::vector<std::vector<int64_t>> &v, size_t n) {
    return std::vector<std::vector<int64_t>>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
}

std::vector<std::vector<int64_t>> take(cdrmix::DataSource &d, Split split, int64_t count, int64_t T) {
    std::vector<std::vector<int64_t>> out;
    for (int64_t i = 0; i < count; ++i) out.push_back(row(d.next_batch(split, 1, T), 0));
    return out;
}

std::string jsonl_tokens(const std::vector<std::vector<int64_t>> &records) {
    std::string s;
    for (const auto &r : records) s += Json{{"tokens", r}}.dump() + "\n";
    return s;
}

} // namespace

TEST(BinData, ReadsUint16AndUint32FilesExactly) {
    const auto dir = temp_dir("bin_exact");
    const auto train = iota(1000, 7), val = iota(100, 3);
    // uint32 ids beyond uint16's range, as Oxidizr's files hold.
    const auto big = iota(500, 100000);
    for (auto [dtype, ids, vocab] : {std::tuple{cdrmix::TokenDtype::U16, train, 2000L},
                                     std::tuple{cdrmix::TokenDtype::U32, big, 200000L}}) {
        const std::string name = cdrmix::token_dtype_name(dtype);
        auto d = source({{"type", "bin"}, {"path", write_tokens(dir / (name + "_train.bin"), ids, dtype)},
                         {"val_path", write_tokens(dir / (name + "_val.bin"), val, dtype)},
                         {"dtype", name}, {"vocab_size", vocab}, {"shuffle", false}});
        EXPECT_EQ(d->num_tokens(Split::Train), static_cast<int64_t>(ids.size()));
        const auto train_windows = windows(ids, 16), val_windows = windows(val, 16);
        EXPECT_EQ(take(*d, Split::Train, 5, 16), first(train_windows, 5)) << name;
        EXPECT_EQ(take(*d, Split::Val, 3, 16), first(val_windows, 3)) << name;
    }
    // A raw file written byte by byte as nanoGPT's numpy tofile() does: little-endian uint16.
    std::string raw;
    for (int v : {1, 2, 300, 65535}) raw += static_cast<char>(v & 0xff), raw += static_cast<char>(v >> 8);
    auto d = source({{"type", "bin"}, {"path", write_text(dir / "raw.bin", raw)}, {"val_path", (dir / "raw.bin").string()},
                     {"dtype", "uint16"}, {"vocab_size", 65536}, {"shuffle", false}});
    EXPECT_EQ(row(d->next_batch(Split::Train, 1, 3), 0), (std::vector<int64_t>{1, 2, 300, 65535}));
}

TEST(BinData, TruncatedOrOutOfRangeFilesAreRefused) {
    const auto dir = temp_dir("bin_errors");
    const std::string odd = write_text(dir / "odd.bin", std::string(4001, 'x'));
    const std::string msg = error_of([&] { source({{"type", "bin"}, {"path", odd}, {"dtype", "uint32"}, {"vocab_size", 10}}); });
    EXPECT_NE(msg.find(odd + ": 4001 bytes is not a whole number of uint32 tokens (4 bytes each; 1000 tokens and 1 bytes left over)"),
              std::string::npos) << msg;
    const std::string empty = write_text(dir / "empty.bin", "");
    EXPECT_NE(error_of([&] { source({{"type", "bin"}, {"path", empty}, {"dtype", "uint16"}, {"vocab_size", 10}}); })
                  .find("the file is empty"), std::string::npos);
    auto d = source({{"type", "bin"}, {"path", write_tokens(dir / "ids.bin", {1, 2, 3, 12, 4, 5}, cdrmix::TokenDtype::U16)},
                     {"dtype", "uint16"}, {"vocab_size", 10}, {"val_fraction", 0.2}, {"shuffle", false}});
    EXPECT_NE(error_of([&] { d->next_batch(Split::Train, 1, 4); }).find("ids.bin: token 12 at index 3 is outside the vocabulary of 10"),
              std::string::npos);
    EXPECT_NE(error_of([&] { source({{"type", "bin"}, {"path", (dir / "ids.bin").string()}, {"dtype", "int8"}, {"vocab_size", 10}}); })
                  .find("key 'dtype' must be one of \"uint16\", \"uint32\""), std::string::npos);
    EXPECT_NE(error_of([&] { source({{"type", "bin"}, {"path", (dir / "ids.bin").string()}, {"dtype", "uint16"}}); })
                  .find("give either 'tokenizer'"), std::string::npos);
}

TEST(JsonlData, ReadsTextAndTokenRecordsExactly) {
    const auto dir = temp_dir("jsonl_exact");
    const std::string text = R"({"text": "hello"}
{"tokens": [1, 2, 3]}

{"input_ids": [4, 5, 0, 0], "attention_mask": [1, 1, 0, 0], "dataset": "x"}
{"text": "é!", "meta": 1}
)";
    const std::string train = write_text(dir / "train.jsonl", text);
    auto d = source({{"type", "jsonl"}, {"path", train}, {"val_path", train}, {"shuffle", false}, {"eos_id", 0}});
    // byte tokens of "hello\n", eos, 1 2 3, eos, 4 5 (padding dropped), eos, bytes of "é!\n", eos
    std::vector<int64_t> stream = {'h', 'e', 'l', 'l', 'o', '\n', 0, 1, 2, 3, 0, 4, 5, 0, 0xc3, 0xa9, '!', '\n', 0};
    const auto expected = windows(stream, 4);
    EXPECT_EQ(take(*d, Split::Train, static_cast<int64_t>(expected.size()), 4), expected);
    // The next batch starts the second epoch: the same sequences again.
    EXPECT_EQ(take(*d, Split::Train, 1, 4)[0], expected[0]);
    EXPECT_EQ(take(*d, Split::Val, 2, 4), first(expected, 2));
    EXPECT_EQ(d->num_tokens(Split::Train), -1);
}

TEST(JsonlData, ValSplitByLineWithoutValPath) {
    const auto dir = temp_dir("jsonl_split");
    std::vector<std::vector<int64_t>> records;
    for (int i = 0; i < 20; ++i) records.push_back(iota(5, 10 * i));
    const std::string path = write_text(dir / "all.jsonl", jsonl_tokens(records));
    // val_fraction 0.25: lines 4, 8, 12, 16, 20 are val.
    auto d = source({{"type", "jsonl"}, {"path", path}, {"val_fraction", 0.25}, {"shuffle", false}, {"tokenizer", "byte"}});
    std::vector<int64_t> train_stream, val_stream;
    for (int i = 0; i < 20; ++i) {
        auto &s = (i + 1) % 4 == 0 ? val_stream : train_stream;
        s.insert(s.end(), records[static_cast<size_t>(i)].begin(), records[static_cast<size_t>(i)].end());
    }
    EXPECT_EQ(take(*d, Split::Train, 3, 5), first(windows(train_stream, 5), 3));
    EXPECT_EQ(take(*d, Split::Val, 4, 5), windows(val_stream, 5));
}

TEST(JsonlData, MalformedLinesFailWithFileAndLineOrAreSkippedAndCounted) {
    const auto dir = temp_dir("jsonl_bad");
    const std::string path = write_text(dir / "bad.jsonl", "{\"tokens\": [1, 2, 3]}\n{\"tokens\": [4, 5, 6]}\n{\"tokens\": [7, \n"
                                                           "{\"text\": 5}\n{\"tokens\": [8, 9, 10]}\n{\"tokens\": [300]}\n"
                                                           "[1, 2]\n{\"other\": 1}\n{\"tokens\": [11, 12, 13]}\n");
    auto strict = source({{"type", "jsonl"}, {"path", path}, {"val_path", path}, {"shuffle", false}});
    const std::string msg = error_of([&] { take(*strict, Split::Train, 2, 4); });
    EXPECT_EQ(msg.rfind(path + ":3: not valid JSON: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);

    auto lenient = source({{"type", "jsonl"}, {"path", path}, {"val_path", path}, {"shuffle", false}, {"on_error", "skip"}});
    const auto expected = windows({1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13}, 4);
    testing::internal::CaptureStderr();
    EXPECT_EQ(take(*lenient, Split::Train, static_cast<int64_t>(expected.size()), 4), expected);
    const std::string warnings = testing::internal::GetCapturedStderr();
    EXPECT_NE(warnings.find(path + ":4: field 'text' must be a string or a list of token ids, got number; skipped"), std::string::npos) << warnings;
    EXPECT_NE(warnings.find(path + ":6: token 300 in 'tokens' is outside the vocabulary (0..255)"), std::string::npos) << warnings;
    EXPECT_NE(warnings.find(path + ":7: expected a JSON object, got array"), std::string::npos) << warnings;
    EXPECT_NE(warnings.find(path + ":8: record has no 'text', 'tokens' or 'input_ids' field"), std::string::npos) << warnings;
    // Reading the file again (second epoch) counts each bad line once.
    take(*lenient, Split::Train, static_cast<int64_t>(expected.size()), 4);
    EXPECT_NE(lenient->describe().find("5 malformed line(s) skipped"), std::string::npos) << lenient->describe();
}

TEST(JsonlData, RecursiveGlobsAndMissingFiles) {
    const auto dir = temp_dir("jsonl_glob");
    write_text(dir / "a.jsonl", jsonl_tokens({{1, 2}}));
    write_text(dir / "sub" / "deeper" / "b.jsonl", jsonl_tokens({{3, 4}}));
    write_text(dir / "sub" / "c.txt", "not jsonl");
    auto d = source({{"type", "jsonl"}, {"path", (dir / "**" / "*.jsonl").string()}, {"val_path", (dir / "a.jsonl").string()},
                     {"shuffle", false}});
    EXPECT_EQ(take(*d, Split::Train, 1, 3)[0], (std::vector<int64_t>{1, 2, 3, 4}));
    EXPECT_NE(d->describe().find("jsonl: 3 file(s)"), std::string::npos) << d->describe();
    const std::string missing = (dir / "none" / "**" / "*.jsonl").string();
    EXPECT_NE(error_of([&] { source({{"type", "jsonl"}, {"path", missing}}); }).find("no JSONL files at '" + missing + "'"),
              std::string::npos);
}

TEST(JsonlData, FileOrderIsShuffledPerEpochAndSeed) {
    const auto dir = temp_dir("jsonl_files");
    for (int f = 0; f < 6; ++f) write_text(dir / ("part-" + std::to_string(f) + ".jsonl"), jsonl_tokens({iota(5, 10 * f)}));
    auto first_tokens = [&](const Json &extra) {
        Json cfg = {{"type", "jsonl"}, {"path", (dir / "*.jsonl").string()}, {"val_path", (dir / "part-0.jsonl").string()},
                    {"shuffle_buffer", 1}};
        for (auto it = extra.begin(); it != extra.end(); ++it) cfg[it.key()] = it.value();
        auto d = source(cfg);
        // An epoch is 30 tokens, 7 sequences of T = 4; each epoch's first token is its first file's.
        std::set<int64_t> firsts;
        std::multiset<int64_t> tokens;
        for (int epoch = 0; epoch < 8; ++epoch) {
            auto seqs = take(*d, Split::Train, 7, 4);
            firsts.insert(seqs[0][0]);
            if (epoch == 0)
                for (const auto &s : seqs) tokens.insert(s.begin() + 1, s.end());
        }
        return std::pair{firsts, tokens.size()};
    };
    EXPECT_EQ(first_tokens({{"shuffle", false}}).first, (std::set<int64_t>{0}));
    auto [firsts, targets] = first_tokens({{"seed", 5}});
    EXPECT_GT(firsts.size(), 2u);
    EXPECT_EQ(targets, 28u);
}

// ---- contracts every source keeps: sharding, shuffling, position ----

namespace {

struct Case {
    std::string name;
    Json config;         // without rank / world_size
    int64_t sequences;   // per epoch at T = 8 (world_size 1)
};

std::vector<Case> cases() {
    const auto dir = temp_dir("contract");
    // Unique token ids, so every sequence is distinguishable.
    const auto ids = iota(8 * 60 + 1, 1);
    write_tokens(dir / "u32.bin", ids, cdrmix::TokenDtype::U32);
    std::vector<std::vector<int64_t>> records;
    for (size_t i = 0; i + 1 < ids.size(); i += 7) records.emplace_back(ids.begin() + i, ids.begin() + std::min(ids.size(), i + 7));
    // One shard: file-order shuffling changes how records pack, which JsonlData.FileOrder* covers.
    write_text(dir / "shard-0.jsonl", jsonl_tokens(records));
    write_text(dir / "val.jsonl", jsonl_tokens({iota(40, 1)}));
    std::string text;
    for (int i = 0; i < 61; ++i) text += "line " + std::to_string(100 + i) + "\n"; // 9 chars a line
    write_text(dir / "corpus.txt", text);
    const int64_t text_train = int64_t(text.size()) - std::max<int64_t>(1, int64_t(double(text.size()) * 0.1));
    return {
        {"bin", {{"type", "bin"}, {"path", (dir / "u32.bin").string()}, {"dtype", "uint32"}, {"vocab_size", 1000}, {"val_fraction", 0.1}},
         (int64_t(ids.size()) - 48 - 1) / 8},
        {"jsonl", {{"type", "jsonl"}, {"path", (dir / "shard-*.jsonl").string()}, {"val_path", (dir / "val.jsonl").string()},
                   {"tokenizer", write_text(dir / "ids.json", R"({"kind": "ids", "vocab_size": 1000})")}, {"shuffle_buffer", 7}},
         (int64_t(ids.size()) - 1) / 8},
        {"text", {{"type", "text"}, {"path", (dir / "corpus.txt").string()}, {"tokenizer", "byte"}}, (text_train - 1) / 8},
        {"synthetic", {{"type", "synthetic"}, {"task", "recall"}, {"num_pairs", 2}, {"queries", 1}, {"train_size", 50}, {"val_size", 10}}, 50},
    };
}

Json with(Json cfg, const Json &extra) {
    for (auto it = extra.begin(); it != extra.end(); ++it) cfg[it.key()] = it.value();
    return cfg;
}

} // namespace

TEST(DataContract, TwoRanksReadEverySequenceOnceAnEpoch) {
    for (const auto &c : cases()) {
        SCOPED_TRACE(c.name);
        auto all = take(*source(c.config), Split::Train, c.sequences, 8);
        std::multiset<std::vector<int64_t>> expected(all.begin(), all.end());
        ASSERT_EQ(std::set<std::vector<int64_t>>(all.begin(), all.end()).size() == all.size() || c.name == "text", true);
        std::multiset<std::vector<int64_t>> got;
        int64_t per_rank[2] = {0, 0};
        for (int rank = 0; rank < 2; ++rank) {
            auto d = source(with(c.config, {{"rank", rank}, {"world_size", 2}}));
            // Both ranks get half an epoch (the jsonl stream may give rank 0 one more when the count is odd).
            per_rank[rank] = c.sequences / 2 + (c.name == "jsonl" && rank == 0 ? c.sequences % 2 : 0);
            for (auto &s : take(*d, Split::Train, per_rank[rank], 8)) got.insert(s);
        }
        if (c.sequences % 2 == 0 || c.name == "jsonl") EXPECT_EQ(got, expected);
        else {
            // Array sources leave the odd sequence out of this epoch; nothing is read twice.
            EXPECT_EQ(got.size(), expected.size() - 1);
            EXPECT_TRUE(std::includes(expected.begin(), expected.end(), got.begin(), got.end()));
        }
    }
}

TEST(DataContract, ShufflingIsSeededAndCoversTheEpoch) {
    for (const auto &c : cases()) {
        SCOPED_TRACE(c.name);
        // Same seed: the synthetic source's seed also picks its examples.
        auto plain = take(*source(with(c.config, {{"shuffle", false}, {"seed", 1}})), Split::Train, c.sequences, 8);
        auto a = take(*source(with(c.config, {{"seed", 1}})), Split::Train, c.sequences, 8);
        auto b = take(*source(with(c.config, {{"seed", 1}})), Split::Train, c.sequences, 8);
        auto other = take(*source(with(c.config, {{"seed", 2}})), Split::Train, c.sequences, 8);
        EXPECT_EQ(a, b);
        EXPECT_NE(a, plain);
        EXPECT_NE(a, other);
        EXPECT_EQ(std::multiset<std::vector<int64_t>>(a.begin(), a.end()),
                  std::multiset<std::vector<int64_t>>(plain.begin(), plain.end()));
    }
}

TEST(DataContract, RestoredPositionContinuesWithTheNextUnseenBatch) {
    for (const auto &c : cases()) {
        for (int64_t consumed : {0, 1, 3, 5, 11, 20}) { // inside blocks, across block, epoch and record boundaries
            SCOPED_TRACE(c.name + " after " + std::to_string(consumed) + " batches");
            auto a = source(c.config);
            for (int64_t i = 0; i < consumed; ++i) a->next_batch(Split::Train, 3, 8);
            a->next_batch(Split::Val, 2, 8);
            // Through text, as a checkpoint stores it.
            const Json saved = Json::parse(a->position().dump());
            auto b = source(c.config);
            b->restore(saved);
            for (int i = 0; i < 3; ++i) EXPECT_TRUE(torch::equal(a->next_batch(Split::Train, 3, 8), b->next_batch(Split::Train, 3, 8)));
            EXPECT_TRUE(torch::equal(a->next_batch(Split::Val, 2, 8), b->next_batch(Split::Val, 2, 8)));
        }
    }
}

TEST(DataContract, PositionOfAnotherSourceIsRefused) {
    auto all = cases();
    auto bin = source(all[0].config);
    auto jsonl = source(all[1].config);
    EXPECT_NE(error_of([&] { jsonl->restore(bin->position()); }).find("is not a position of a 'jsonl' source"), std::string::npos);
    EXPECT_NE(error_of([&] { bin->restore(jsonl->position()); }).find("is not a position of a 'bin' source"), std::string::npos);
}

TEST(DataContract, ValRestartsOnReset) {
    for (const auto &c : cases()) {
        SCOPED_TRACE(c.name);
        auto d = source(c.config);
        auto first = d->next_batch(Split::Val, 2, 8);
        d->next_batch(Split::Val, 2, 8);
        d->reset(Split::Val);
        EXPECT_TRUE(torch::equal(d->next_batch(Split::Val, 2, 8), first));
    }
}

TEST(Permutation, IsABijectionForAnySize) {
    for (int64_t n : {1, 2, 3, 7, 64, 1000, 4097}) {
        std::set<int64_t> seen;
        for (int64_t i = 0; i < n; ++i) seen.insert(cdrmix::permuted_index(i, n, 99));
        EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
        EXPECT_EQ(*seen.rbegin(), n - 1);
    }
}

// ---- synthetic tasks: the examples are what the task says ----

namespace {

std::string decode_row(cdrmix::DataSource &d, const torch::Tensor &batch, int64_t i) {
    return d.tokenizer()->decode(row(batch, i));
}

} // namespace

TEST(SyntheticData, ExamplesFollowTheirTask) {
    auto recall = source({{"type", "synthetic"}, {"task", "recall"}, {"num_pairs", 6}, {"queries", 3}});
    auto batch = recall->next_batch(Split::Train, 4, 63);
    for (int64_t i = 0; i < 4; ++i) {
        const std::string s = decode_row(*recall, batch, i);
        ASSERT_EQ(s.size(), 64u);
        std::map<char, char> pairs;
        for (int p = 0; p < 6; ++p) pairs[s[2 * p]] = s[2 * p + 1];
        EXPECT_EQ(pairs.size(), 6u) << s; // distinct keys
        for (int q = 0; q < 3; ++q) {
            const size_t at = 64 - 9 + 3 * q;
            EXPECT_EQ(s[at], '?') << s;
            EXPECT_EQ(pairs.at(s[at + 1]), s[at + 2]) << s;
        }
    }
    auto copy = source({{"type", "synthetic"}, {"task", "copy"}});
    const std::string c = decode_row(*copy, copy->next_batch(Split::Train, 1, 20), 0);
    EXPECT_EQ(c.substr(0, 10) + "=" + c.substr(0, 10), c);
    auto counting = source({{"type", "synthetic"}, {"task", "counting"}, {"symbols", 3}});
    const std::string n = decode_row(*counting, counting->next_batch(Split::Train, 1, 39), 0);
    std::map<char, int> counts;
    for (size_t i = 0; i + 1 < n.size(); i += 2) EXPECT_EQ(n[i + 1], '0' + (++counts[n[i]] % 10)) << n;
    EXPECT_NE(error_of([&] { recall->next_batch(Split::Train, 1, 10); }).find("too short for 6 pairs and 3 queries"),
              std::string::npos);
    EXPECT_NE(error_of([&] { source({{"type", "synthetic"}, {"task", "sort"}}); }).find("key 'task' must be"), std::string::npos);
    EXPECT_NE(error_of([&] { source({{"type", "synthetic"}, {"task", "copy"}, {"num_pair", 3}}); })
                  .find("unknown key 'num_pair'; did you mean 'num_pairs'?"),
              std::string::npos);
    EXPECT_NE(error_of([&] { source({{"type", "synthetic"}, {"task", "recall"}, {"num_pairs", 27}}); })
                  .find("key 'num_pairs' must be between 1 and 26"),
              std::string::npos);
    EXPECT_NE(error_of([&] { source({{"type", "synthetic"}}); }).find("missing required key 'task'"), std::string::npos);
}

// A relative data path written in a script or YAML file is found beside that
// file first (experiments run from any folder), then in the working folder; a
// command-line value is the working folder's, and globs stay as written.
TEST(DataPaths, RelativePathsFromAFileAreFoundBesideIt) {
    const fs::path dir = temp_dir("beside"), script = dir / "exp" / "run.lua";
    write_text(script, "-- a script");
    write_text(dir / "data" / "corpus.txt", "hello");
    auto patterns = [&](const Json &value, const std::string &source) {
        return cdrmix::path_patterns(cdrmix::Config(Json{{"path", value}}, "data", source), "path");
    };
    const std::string beside = (dir / "data" / "corpus.txt").lexically_normal().string();
    EXPECT_EQ(patterns("../data/corpus.txt", script.string()), std::vector<std::string>{beside});
    EXPECT_EQ(patterns(Json::array({"../data/corpus.txt", "nowhere.txt"}), script.string()),
              (std::vector<std::string>{beside, "nowhere.txt"}))
        << "a path not beside the script stays as written (the working folder's)";
    EXPECT_EQ(patterns("../data/*.txt", script.string()), std::vector<std::string>{"../data/*.txt"});
    EXPECT_EQ(patterns("../data/corpus.txt", "command line"), std::vector<std::string>{"../data/corpus.txt"});
    auto sources = std::make_shared<cdrmix::ValueSources>();
    sources->by_path["/path"] = "command line";
    EXPECT_EQ(cdrmix::path_patterns(cdrmix::Config(Json{{"path", "../data/corpus.txt"}}, "data", script.string(), sources),
                                    "path"),
              std::vector<std::string>{"../data/corpus.txt"})
        << "an override from the command line is the working folder's";
}
