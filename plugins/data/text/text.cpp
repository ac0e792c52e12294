// Text data source: raw text from a file, a folder (recursively) or a glob,
// tokenised once (byte or char level) and served as random windows of
// seq_len + 1 tokens. The last val_fraction of the token stream is the
// validation split. Batches are a pure function of (seed, split, batch index,
// rank), so the saved position {train: n, val: m} resumes exactly. With
// world_size > 1 each rank draws windows from its own contiguous shard.
//
// Config: path (string or list), tokenizer ("char" | "byte"), val_fraction (0.1),
// seed (1234), rank (0), world_size (1).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace {

using torch::Tensor;

std::vector<std::string> expand(const std::string &pattern, const std::string &where) {
    std::vector<std::string> files;
    std::error_code ec;
    if (fs::is_directory(pattern, ec)) {
        for (const auto &e : fs::recursive_directory_iterator(pattern, ec))
            if (e.is_regular_file()) files.push_back(e.path().string());
    } else if (fs::is_regular_file(pattern, ec)) {
        files.push_back(pattern);
    } else {
        glob_t g{};
        if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; ++i)
                if (fs::is_regular_file(g.gl_pathv[i], ec)) files.emplace_back(g.gl_pathv[i]);
        globfree(&g);
    }
    if (files.empty()) throw cdrmix::Error(where + ": no text files at '" + pattern + "'");
    std::sort(files.begin(), files.end());
    return files;
}

class TextSource : public cdrmix::DataSource {
public:
    explicit TextSource(const cdrmix::Config &cfg) {
        std::vector<std::string> patterns;
        cdrmix::Json path = cfg.raw("path");
        if (path.is_string()) patterns.push_back(path.get<std::string>());
        else if (path.is_array())
            for (const auto &p : path) patterns.push_back(p.get<std::string>());
        else throw cdrmix::Error(cfg.where() + ": key 'path' must be a file, folder or glob (or a list of them)");

        std::string corpus;
        for (const auto &pat : patterns)
            for (const auto &f : expand(pat, cfg.where())) {
                std::ifstream in(f, std::ios::binary);
                if (!in) throw cdrmix::Error(cfg.where() + ": cannot read '" + f + "'");
                std::stringstream ss;
                ss << in.rdbuf();
                corpus += ss.str();
                files_.push_back(f);
            }
        if (corpus.empty()) throw cdrmix::Error(cfg.where() + ": the corpus at '" + patterns[0] + "' is empty");

        const std::string tok = cfg.get_string("tokenizer", "char");
        if (tok == "char") tokenizer_ = cdrmix::make_char_tokenizer(corpus);
        else if (tok == "byte") tokenizer_ = cdrmix::make_byte_tokenizer();
        else throw cdrmix::Error(cfg.where() + ": key 'tokenizer' must be \"char\" or \"byte\", got \"" + tok + "\"");

        const double val_fraction = cfg.get_double("val_fraction", 0.1);
        if (val_fraction <= 0 || val_fraction >= 1)
            throw cdrmix::Error(cfg.where() + ": key 'val_fraction' must be between 0 and 1 (exclusive)");
        seed_ = static_cast<uint64_t>(cfg.get_int("seed", 1234));
        rank_ = cfg.get_int("rank", 0);
        world_ = cfg.get_int("world_size", 1);
        if (world_ < 1 || rank_ < 0 || rank_ >= world_)
            throw cdrmix::Error(cfg.where() + ": need 0 <= rank < world_size");

        std::vector<int64_t> ids = tokenizer_->encode(corpus);
        tokens_ = torch::tensor(ids, torch::kInt64);
        const int64_t n = tokens_.size(0);
        split_at_ = n - std::max<int64_t>(1, static_cast<int64_t>(double(n) * val_fraction));
        where_ = cfg.where();
    }

    Tensor next_batch(cdrmix::Split split, int64_t batch, int64_t seq_len) override {
        const bool train = split == cdrmix::Split::Train;
        const int64_t begin = train ? 0 : split_at_, end = train ? split_at_ : tokens_.size(0);
        const int64_t span = end - begin - seq_len; // valid window starts: [begin, begin + span)
        if (span < 1)
            throw cdrmix::Error(where_ + ": the " + std::string(train ? "train" : "val") + " split has " +
                                std::to_string(end - begin) + " tokens, fewer than seq_len + 2 = " +
                                std::to_string(seq_len + 2) + " (lower seq_len or val_fraction, or add text)");
        // This rank's shard of window starts.
        const int64_t lo = begin + span * rank_ / world_, hi = begin + span * (rank_ + 1) / world_;
        int64_t &counter = train ? train_batches_ : val_batches_;
        std::seed_seq seq{seed_, static_cast<uint64_t>(train ? 0 : 1), static_cast<uint64_t>(counter),
                          static_cast<uint64_t>(rank_)};
        std::mt19937_64 rng(seq);
        std::uniform_int_distribution<int64_t> pick(lo, std::max(lo, hi - 1));
        ++counter;
        Tensor out = torch::empty({batch, seq_len + 1}, torch::kInt64);
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t start = pick(rng);
            out[b].copy_(tokens_.slice(0, start, start + seq_len + 1));
        }
        return out;
    }

    std::shared_ptr<cdrmix::Tokenizer> tokenizer() const override { return tokenizer_; }
    int64_t num_tokens(cdrmix::Split split) const override {
        return split == cdrmix::Split::Train ? split_at_ : tokens_.size(0) - split_at_;
    }
    void reset(cdrmix::Split split) override { (split == cdrmix::Split::Train ? train_batches_ : val_batches_) = 0; }
    cdrmix::Json position() const override { return {{"train", train_batches_}, {"val", val_batches_}}; }
    void restore(const cdrmix::Json &p) override {
        train_batches_ = p.value("train", int64_t(0));
        val_batches_ = p.value("val", int64_t(0));
    }
    std::string describe() const override {
        return "text: " + std::to_string(files_.size()) + " file(s), " + std::to_string(tokens_.size(0)) + " " +
               tokenizer_->kind() + " tokens, vocabulary " + std::to_string(tokenizer_->vocab_size());
    }

private:
    std::vector<std::string> files_;
    std::shared_ptr<cdrmix::Tokenizer> tokenizer_;
    Tensor tokens_;
    int64_t split_at_ = 0;
    uint64_t seed_ = 0;
    int64_t rank_ = 0, world_ = 1;
    int64_t train_batches_ = 0, val_batches_ = 0;
    std::string where_;
};

} // namespace

CDRMIX_PLUGIN("text", "1.0.0", "Raw text files tokenised at byte or char level") {
    registry.add_data_source("text", "Text files, folders or globs; byte/char tokens; random windows",
                             [](const cdrmix::Config &c) { return std::make_shared<TextSource>(c); });
}
