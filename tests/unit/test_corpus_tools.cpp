// `cdrmix data dedup` and `cdrmix data filter`: planted near-duplicates and
// planted bad documents, with exact counts, and the perplexity rule under a
// tiny model trained here.
#include "cli/data/corpus_tools.hpp"
#include "cli/data/perplexity.hpp"
#include "cli/data/subcommands.hpp"
#include "model/model.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

#include "test_util.hpp"

#include <fstream>
#include <random>

namespace {

namespace fs = std::filesystem;
using cdrmix::Json;

void write_text(const fs::path &p, const std::string &text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

std::vector<std::string> read_lines(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::string record(const std::string &text) { return Json{{"text", text}}.dump(); }

// n words drawn from a fixed vocabulary of 500 made-up words.
std::vector<std::string> random_words(std::mt19937_64 &rng, size_t n) {
    std::vector<std::string> words;
    for (size_t i = 0; i < n; ++i) words.push_back("w" + std::to_string(rng() % 500));
    return words;
}

std::string join(const std::vector<std::string> &words) {
    std::string s;
    for (const auto &w : words) s += (s.empty() ? "" : " ") + w;
    return s;
}

cdrmix::CorpusOptions documents() { return cdrmix::document_options(cdrmix::CorpusFlags{}); }

TEST(CorpusDedup, SignaturesEstimateJaccard) {
    cdrmix::MinHashOptions o;
    o.shingle = 1;
    o.num_perm = 1024;
    std::vector<std::string> a, b;
    for (int i = 0; i < 100; ++i) a.push_back("a" + std::to_string(i));
    for (int i = 50; i < 150; ++i) b.push_back("a" + std::to_string(i));
    const auto sa = cdrmix::minhash_signature(join(a), o), sb = cdrmix::minhash_signature(join(b), o);
    EXPECT_NEAR(cdrmix::estimated_jaccard(sa.data(), sb.data(), o.num_perm), 50.0 / 150.0, 0.05);
    // Whitespace does not make words: the same words spaced otherwise are the same set.
    EXPECT_EQ(cdrmix::minhash_signature("x  y\tz\n", o), cdrmix::minhash_signature("x y z", o));
    EXPECT_EQ(cdrmix::choose_bands(0.8, 128), 14); // 14 bands of 9 rows (docs/data.md)
    EXPECT_EQ(cdrmix::choose_bands(0.9, 128), 8);
    EXPECT_NE(cdrmix::test::error_of([] { cdrmix::NearDuplicateIndex(128, 0, 0.8); }).find("--bands"),
              std::string::npos);
    EXPECT_NE(cdrmix::test::error_of([] { cdrmix::NearDuplicateIndex(128, 16, 1.5); }).find("--threshold"),
              std::string::npos);
}

// 20 distinct documents of 200 words, then 5 of them with 2 words changed, one
// exact copy in a text file, and one sharing half its words with another
// (similarity about 1/3, kept).
TEST(CorpusDedup, RemovesPlantedNearDuplicatesAndKeepsDistinct) {
    const fs::path dir = cdrmix::test::scratch_dir("dedup_planted");
    std::mt19937_64 rng(7);
    std::vector<std::vector<std::string>> docs;
    for (int i = 0; i < 20; ++i) docs.push_back(random_words(rng, 200));
    std::vector<std::string> lines, expected;
    for (const auto &d : docs) {
        lines.push_back(record(join(d)));
        expected.push_back(lines.back());
    }
    for (int i = 0; i < 5; ++i) {
        auto d = docs[static_cast<size_t>(i)];
        d[40] = "changed";
        d[150] = "edited" + std::to_string(i);
        lines.push_back(Json{{"text", join(d)}, {"id", i}}.dump());
    }
    auto half = std::vector<std::string>(docs[5].begin(), docs[5].begin() + 100);
    for (const auto &w : random_words(rng, 100)) half.push_back(w);
    lines.push_back(record(join(half)));
    expected.push_back(lines.back());
    std::string shard;
    for (const auto &l : lines) shard += l + "\n";
    write_text(dir / "a.jsonl", shard);
    write_text(dir / "b.txt", join(docs[9])); // a text file is one document: docs[9] again

    cdrmix::DedupOptions o;
    const auto c = cdrmix::dedup_corpus({(dir / "a.jsonl").string(), (dir / "b.txt").string()}, documents(), o,
                                        (dir / "out.jsonl").string());
    EXPECT_EQ(c.read, 27);
    EXPECT_EQ(c.removed, 6);
    EXPECT_EQ(c.kept, 21);
    EXPECT_EQ(c.bands * c.rows <= 128, true);
    EXPECT_EQ(read_lines(dir / "out.jsonl"), expected); // the first of each cluster, records as they were
}

TEST(CorpusDedup, ExactCountsOnAHandMadeCorpus) {
    const fs::path dir = cdrmix::test::scratch_dir("dedup_hand");
    const std::string a = "the quick brown fox jumps over the lazy dog near the river bank today";
    const std::string b = "a completely different sentence about cooking pasta with fresh tomato sauce";
    write_text(dir / "c.jsonl", record(a) + "\n" + record(b) + "\n\n" + record(a) + "\n" + record("") + "\n" +
                                    "{\"text\": nul\n" + record("") + "\n" + record("short one") + "\n");
    write_text(dir / "d.txt", b); // the second copy of b
    cdrmix::DedupOptions o;
    o.minhash.shingle = 3;
    cdrmix::CorpusFlags skip;
    skip.on_error = "skip";
    const auto c = cdrmix::dedup_corpus({(dir / "c.jsonl").string(), (dir / "d.txt").string()},
                                        cdrmix::document_options(skip), o, (dir / "out.jsonl").string());
    EXPECT_EQ(c.malformed, 1);
    EXPECT_EQ(c.read, 7); // the blank and the malformed line are no documents
    EXPECT_EQ(c.removed, 3); // a again, the second empty text, b in the text file
    EXPECT_EQ(c.kept, 4);
    const auto out = read_lines(dir / "out.jsonl");
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[3], record("short one"));
    // Without skip, the malformed line stops the command, naming it, and no output appears.
    const std::string e = cdrmix::test::error_of([&] {
        cdrmix::dedup_corpus({(dir / "c.jsonl").string()}, documents(), o, (dir / "none.jsonl").string());
    });
    EXPECT_NE(e.find("c.jsonl:6: not valid JSON"), std::string::npos) << e;
    EXPECT_FALSE(fs::exists(dir / "none.jsonl"));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 3); // no temporary file left
}

TEST(CorpusFilter, DocumentStatsCountEachClass) {
    // "Ab1 ,é\n€€€" then an invalid byte: letters A b é, digit 1, whitespace ' ' and
    // '\n', symbols ',' € € € and the invalid byte.
    const auto s = cdrmix::document_stats("Ab1 ,\xc3\xa9\n\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xff");
    EXPECT_EQ(s.chars, 11);
    EXPECT_EQ(s.letters, 3);
    EXPECT_EQ(s.digits, 1);
    EXPECT_EQ(s.whitespace, 2);
    EXPECT_EQ(s.symbols, 5);
    EXPECT_EQ(s.longest_run, 3);
    EXPECT_EQ(s.lines, 2);
    EXPECT_EQ(s.repeated_lines, 0);
    const auto r = cdrmix::document_stats("x\n  x \n\ny\nx\n");
    EXPECT_EQ(r.lines, 4);
    EXPECT_EQ(r.repeated_lines, 2);
    EXPECT_EQ(cdrmix::document_stats("\xd0\x9f\xd1\x80\xd0\xb8\xe4\xbd\xa0\xe5\xa5\xbd").letters, 5); // При你好
}

TEST(CorpusFilter, RemovesExactlyThePlantedBadDocumentsPerReason) {
    const fs::path dir = cdrmix::test::scratch_dir("filter_planted");
    const std::vector<std::string> good = {
        "A plain paragraph of ordinary English prose, long enough to pass.",
        "\xd0\x9e\xd0\xb1\xd1\x8b\xd1\x87\xd0\xbd\xd1\x8b\xd0\xb9 \xd1\x82\xd0\xb5\xd0\xba\xd1\x81\xd1\x82 "
        "\xd0\xbd\xd0\xb0 \xd1\x80\xd1\x83\xd1\x81\xd1\x81\xd0\xba\xd0\xbe\xd0\xbc \xd1\x8f\xd0\xb7\xd1\x8b\xd0\xba\xd0\xb5.",
        "Line one of a poem\nline two of a poem\nline three, different\n"};
    const std::string too_short = "hi there";
    std::string too_long;
    for (int i = 0; i < 120; ++i) too_long += "word "; // 600 characters
    const std::string symbols = "{{{ }}} <<< >>> ### $$$ %%% ok ok ok";
    const std::string repeated = "buy now\nbuy now\nbuy now\nbuy now\nthanks for reading\n";
    const std::string run = "Zzzzzzzzzzzzzzzzzzzzzzz, said the sleeper quietly.";
    std::string shard;
    for (const auto &t : {good[0], too_short, symbols, good[1], too_long, repeated, run, good[2]}) shard += record(t) + "\n";
    write_text(dir / "in.jsonl", shard);

    cdrmix::FilterRules rules;
    rules.min_chars = 20;
    rules.max_chars = 500;
    rules.max_symbol_ratio = 0.3;
    rules.max_repeat_line_ratio = 0.5;
    rules.max_char_run = 10;
    const auto c = cdrmix::filter_corpus({(dir / "in.jsonl").string()}, documents(), rules, {},
                                         (dir / "out.jsonl").string());
    using R = cdrmix::FilterReason;
    EXPECT_EQ(c.read, 8);
    EXPECT_EQ(c.kept, 3);
    EXPECT_EQ(c.removed[int(R::TooShort)], 1);
    EXPECT_EQ(c.removed[int(R::TooLong)], 1);
    EXPECT_EQ(c.removed[int(R::Symbols)], 1);
    EXPECT_EQ(c.removed[int(R::RepeatedLines)], 1);
    EXPECT_EQ(c.removed[int(R::CharRun)], 1);
    EXPECT_EQ(c.removed[int(R::Perplexity)], 0);
    EXPECT_EQ(read_lines(dir / "out.jsonl"), (std::vector<std::string>{record(good[0]), record(good[1]), record(good[2])}));

    rules.max_ppl = 10;
    EXPECT_NE(cdrmix::test::error_of([&] {
                  cdrmix::filter_corpus({(dir / "in.jsonl").string()}, documents(), rules, {},
                                        (dir / "out2.jsonl").string());
              }).find("--max-ppl needs --checkpoint"),
              std::string::npos);
    EXPECT_FALSE(fs::exists(dir / "out2.jsonl"));
}

// A 2-layer RWKV-7 trained for a few seconds on one repeated sentence scores
// that sentence far below random letters, and the filter removes exactly those.
TEST(CorpusFilter, PerplexityUnderATinyTrainedModel) {
    const fs::path dir = cdrmix::test::scratch_dir("filter_ppl");
    torch::manual_seed(3);
    auto tok = cdrmix::make_byte_tokenizer();
    auto model = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(cdrmix::test::tiny_model_spec(256), "test"),
                                                 cdrmix::Registry::global());
    std::string corpus;
    while (corpus.size() < 4096) corpus += "the cat sat on the mat. ";
    const auto ids = tok->encode(corpus);
    const torch::Tensor all = torch::tensor(ids, torch::kInt64);
    auto opt = cdrmix::make_adamw(*model, 1e-2, 0.0, 0.9, 0.99, 1e-8);
    std::mt19937_64 rng(5);
    for (int step = 0; step < 120; ++step) {
        std::vector<torch::Tensor> rows;
        for (int b = 0; b < 8; ++b) {
            const int64_t at = static_cast<int64_t>(rng() % (ids.size() - 33));
            rows.push_back(all.slice(0, at, at + 33));
        }
        opt->zero_grad();
        model->loss(torch::stack(rows)).total.backward();
        opt->step();
    }
    const std::string ckpt = cdrmix::save_derived_checkpoint((dir / "ckpt").string(), *model, *tok, Json{{"test", 1}});
    const cdrmix::CheckpointPerplexity ppl(ckpt, 32);
    const double familiar = ppl("the cat sat on the mat. the cat sat on the mat. the cat sat on the mat.");
    const double noise = ppl("qzxv jkwp fhgq lmzr ytvb nmcx qpwo eiru");
    EXPECT_LT(familiar, 2.0);
    EXPECT_GT(noise, 20.0);
    EXPECT_TRUE(std::isnan(ppl("x"))); // one token: nothing to predict

    std::string shard;
    for (const std::string t : {"the cat sat on the mat. the cat sat on the mat.", "qzxv jkwp fhgq lmzr ytvb nmcx",
                                "x", "the mat. the cat sat on the mat.", "ploq wuzh mmvx trqa kjhd"})
        shard += record(t) + "\n";
    write_text(dir / "in.jsonl", shard);
    cdrmix::FilterRules rules;
    rules.max_ppl = 8;
    const auto c = cdrmix::filter_corpus({(dir / "in.jsonl").string()}, documents(), rules,
                                         [&](const std::string &t) { return ppl(t); }, (dir / "out.jsonl").string());
    EXPECT_EQ(c.read, 5);
    EXPECT_EQ(c.kept, 3);
    EXPECT_EQ(c.removed[int(cdrmix::FilterReason::Perplexity)], 2);
    EXPECT_EQ(c.unscored, 1);
}

} // namespace
