// JSONL data source: streams records from shards (files, folders, `**/*.jsonl`
// globs) without loading them, tokenises text records on the fly (or takes
// pre-tokenised `tokens` / `input_ids`), and packs the token stream into
// sequences of seq_len + 1 tokens with stride seq_len, crossing record and
// file boundaries. Memory holds one record and one shuffle buffer.
//
// Shuffling: each epoch the train files are read in a seeded order, and the
// sequences are shuffled within blocks of `shuffle_buffer` sequences. Sharding:
// all ranks pack the same stream; rank r keeps the sequences whose index in
// the epoch (after the block shuffle) is r mod world_size, so the ranks
// together read every sequence of an epoch exactly once.
//
// Position: the reader's place at the start of the current block (file, byte
// offset, line, tokens of the current record already used, the token carried
// into the next sequence) and how many of the block's sequences this rank has
// taken. Restoring re-reads that one block and skips what was taken.
//
// The val split is val_path's files or, without them, every
// round(1 / val_fraction)-th line of the train files.
#include <cdrmix/data_paths.hpp>
#include <cdrmix/jsonl.hpp>
#include <cdrmix/sdk.hpp>
#include <cdrmix/window_source.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

namespace {

using cdrmix::Error;
using cdrmix::Json;

struct Settings {
    std::string where;
    cdrmix::RecordFormat format;
    cdrmix::SplitOptions split;
    int64_t every = 0; // without val_path, lines every, 2*every, ... are val (unused with val_path)
    int64_t shuffle_buffer = 0;
};

// Malformed lines seen while skipping: warned about once each, counted once each.
class BadLines {
public:
    void note(const std::string &message, const std::string &file, int64_t line) {
        if (!seen_.insert({file, line}).second) return;
        if (seen_.size() <= 5) std::fprintf(stderr, "cdrmix: warning: %s; skipped\n", message.c_str());
        if (seen_.size() == 6) std::fprintf(stderr, "cdrmix: warning: more malformed lines skipped (counted, not shown)\n");
    }
    size_t count() const { return seen_.size(); }

private:
    std::set<std::pair<std::string, int64_t>> seen_;
};

// Where a split's reader stands. Saved at the start of every block.
struct Cursor {
    int64_t epoch = 0, block = 0, sequence = 0; // sequence: index in the epoch of the block's first sequence
    int64_t file = 0, offset = 0, line = 0;     // the current record's line (or the next line to read)
    int64_t used = 0;                           // tokens of the current record already packed
    int64_t carry = -1;                         // last token of the previous sequence; -1 at an epoch's start
};

class SplitStream {
public:
    SplitStream(std::vector<std::string> files, bool is_val, bool all_lines, std::shared_ptr<cdrmix::Tokenizer> tok,
                const Settings &settings, BadLines &bad)
        : files_(std::move(files)), val_(is_val), all_lines_(all_lines), tok_(std::move(tok)), s_(settings), bad_(bad),
          label_(std::string("the ") + (is_val ? "val" : "train") + " split of " + settings.where) {}

    void next(int64_t seq_len, int64_t *out) {
        if (seq_len != seq_len_) {
            // A new length re-packs the stream: the current block is read again in the new layout.
            const bool started = seq_len_ > 0 && !fresh_;
            seq_len_ = seq_len;
            if (started) seek(block_start_, 0);
        }
        while (taken_ >= static_cast<int64_t>(mine_.size())) fill_block();
        const int64_t j = order_[static_cast<size_t>(mine_[static_cast<size_t>(taken_++)])];
        std::copy_n(block_.begin() + j * (seq_len_ + 1), seq_len_ + 1, out);
    }

    void reset() {
        block_start_ = Cursor{};
        taken_ = 0;
        mine_.clear();
        fresh_ = true;
    }

    Json position() const {
        const Cursor &c = block_start_;
        const size_t file = static_cast<size_t>(c.file);
        return {{"epoch", c.epoch}, {"block", c.block},   {"sequence", c.sequence},
                {"file", c.file},   {"path", file < files_.size() ? files_[epoch_order(c.epoch)[file]] : ""},
                {"offset", c.offset}, {"line", c.line},   {"used", c.used},
                {"carry", c.carry}, {"taken", taken_},   {"seq_len", seq_len_}};
    }

    void restore(const Json &p) {
        auto get = [&](const char *key) {
            if (!p.is_object() || !p.contains(key) || !p[key].is_number_integer())
                throw Error(s_.where + ": the saved data position has no integer '" + key + "' for " + label_);
            return p[key].get<int64_t>();
        };
        Cursor c;
        c.epoch = get("epoch"), c.block = get("block"), c.sequence = get("sequence"), c.file = get("file");
        c.offset = get("offset"), c.line = get("line"), c.used = get("used"), c.carry = get("carry");
        const int64_t taken = get("taken");
        seq_len_ = get("seq_len");
        const std::string path = p.value("path", "");
        const size_t file = static_cast<size_t>(c.file);
        const std::string expected = file < files_.size() ? files_[epoch_order(c.epoch)[file]] : "";
        if (c.file < 0 || path != expected)
            throw Error(s_.where + ": the saved data position is in '" + path + "' but file " + std::to_string(c.file) +
                        " of epoch " + std::to_string(c.epoch) + " is now '" + expected +
                        "' (the data files changed since the checkpoint)");
        if (seq_len_ > 0) seek(c, taken);
        else reset();
    }

private:
    // The order files are read in during `epoch`.
    std::vector<size_t> epoch_order(int64_t epoch) const {
        std::vector<size_t> order(files_.size());
        const bool shuffle = !val_ && s_.split.shuffle;
        const uint64_t key = cdrmix::mix_key({s_.split.seed, 0x6a736f6eULL, uint64_t(epoch)});
        for (size_t i = 0; i < order.size(); ++i)
            order[i] = shuffle ? static_cast<size_t>(cdrmix::permuted_index(int64_t(i), int64_t(order.size()), key)) : i;
        return order;
    }

    bool in_split(int64_t line) const { return all_lines_ || ((line % s_.every == 0) == val_); }

    // Puts the reader at `c` and rebuilds that block, with `taken` of this rank's sequences used.
    void seek(const Cursor &c, int64_t taken) {
        cur_ = c;
        order_files_ = epoch_order(c.epoch);
        open_current();
        record_.clear();
        pos_ = 0;
        if (c.used > 0) {
            if (!load_record()) throw Error(s_.where + ": the saved data position points past the end of the data");
            pos_ = static_cast<size_t>(c.used);
            if (pos_ > record_.size())
                throw Error(s_.where + ": the saved data position is inside a record that is now shorter (" +
                            lines_->path() + ":" + std::to_string(lines_->line()) + ")");
        }
        fresh_ = false;
        fill_block();
        if (taken > static_cast<int64_t>(mine_.size()))
            throw Error(s_.where + ": the saved data position takes more sequences than its block holds");
        taken_ = taken;
    }

    void open_current() {
        lines_.reset();
        if (cur_.file < static_cast<int64_t>(files_.size()))
            lines_ = std::make_unique<cdrmix::JsonlLines>(files_[order_files_[static_cast<size_t>(cur_.file)]],
                                                          cur_.offset, cur_.line);
    }

    void start_epoch(int64_t epoch) {
        cur_ = Cursor{};
        cur_.epoch = epoch;
        order_files_ = epoch_order(epoch);
        open_current();
        record_.clear();
        pos_ = 0;
    }

    // The next record of this split into record_; false at the end of the epoch.
    bool load_record() {
        std::string text;
        while (lines_) {
            const int64_t offset = lines_->offset(), line = lines_->line();
            if (!lines_->next(text)) {
                ++cur_.file;
                cur_.offset = cur_.line = 0;
                open_current();
                continue;
            }
            if (!in_split(lines_->line())) continue;
            record_.clear();
            try {
                if (!cdrmix::record_tokens(text, *tok_, s_.format, lines_->path(), lines_->line(), record_)) continue;
            } catch (const Error &e) {
                if (!s_.format.skip_malformed) throw;
                bad_.note(e.what(), lines_->path(), lines_->line());
                continue;
            }
            if (record_.empty()) continue;
            cur_.offset = offset;
            cur_.line = line;
            pos_ = 0;
            return true;
        }
        return false;
    }

    // Packs the next sequence into `seq`; false at the end of the epoch.
    bool next_sequence(std::vector<int64_t> &seq) {
        const size_t want = static_cast<size_t>(seq_len_ + 1);
        seq.clear();
        if (cur_.carry >= 0) seq.push_back(cur_.carry);
        while (seq.size() < want) {
            if (pos_ == record_.size() && !load_record()) return false;
            const size_t n = std::min(want - seq.size(), record_.size() - pos_);
            seq.insert(seq.end(), record_.begin() + static_cast<std::ptrdiff_t>(pos_),
                       record_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
            pos_ += n;
        }
        cur_.carry = seq.back();
        return true;
    }

    void fill_block() {
        if (fresh_) {
            start_epoch(0);
            fresh_ = false;
        }
        // Terminates: every epoch has at least world_size sequences (checked below), so each rank gets one.
        for (;;) {
            block_start_ = cur_;
            block_start_.used = static_cast<int64_t>(pos_);
            block_.clear();
            int64_t count = 0;
            std::vector<int64_t> seq;
            bool epoch_over = false;
            while (count < s_.shuffle_buffer) {
                if (!next_sequence(seq)) {
                    epoch_over = true;
                    break;
                }
                block_.insert(block_.end(), seq.begin(), seq.end());
                ++count;
            }
            const int64_t epoch_sequences = cur_.sequence + count;
            arrange(count);
            cur_.sequence += count;
            ++cur_.block;
            if (epoch_over) {
                if (epoch_sequences < s_.split.world_size)
                    throw Error(label_ + " packs into " + std::to_string(epoch_sequences) + " sequence(s) of seq_len + 1 = " +
                                std::to_string(seq_len_ + 1) + " tokens, fewer than the " +
                                std::to_string(s_.split.world_size) + " rank(s) reading it (lower seq_len, or add data)");
                start_epoch(cur_.epoch + 1);
            }
            if (!mine_.empty()) return;
        }
    }

    // The block's shuffled order, and which of its slots are this rank's.
    void arrange(int64_t count) {
        order_.resize(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) order_[static_cast<size_t>(i)] = i;
        if (!val_ && s_.split.shuffle) {
            std::mt19937_64 rng(cdrmix::mix_key({s_.split.seed, uint64_t(block_start_.epoch), uint64_t(block_start_.block)}));
            for (int64_t i = count - 1; i > 0; --i)
                std::swap(order_[static_cast<size_t>(i)],
                          order_[static_cast<size_t>(std::uniform_int_distribution<int64_t>(0, i)(rng))]);
        }
        mine_.clear();
        for (int64_t j = 0; j < count; ++j)
            if ((block_start_.sequence + j) % s_.split.world_size == s_.split.rank) mine_.push_back(j);
        taken_ = 0;
    }

    std::vector<std::string> files_;
    bool val_, all_lines_;
    std::shared_ptr<cdrmix::Tokenizer> tok_;
    const Settings &s_;
    BadLines &bad_;
    std::string label_;

    int64_t seq_len_ = 0;
    bool fresh_ = true; // nothing read yet: the first block starts epoch 0
    Cursor cur_, block_start_;
    std::vector<size_t> order_files_;
    std::unique_ptr<cdrmix::JsonlLines> lines_;
    std::vector<int64_t> record_;
    size_t pos_ = 0;
    std::vector<int64_t> block_, order_, mine_;
    int64_t taken_ = 0;
};

class JsonlSource final : public cdrmix::DataSource {
public:
    explicit JsonlSource(const cdrmix::Config &cfg) {
        s_.where = cfg.where();
        const auto patterns = cdrmix::path_patterns(cfg, "path");
        const auto files = cdrmix::expand_paths(patterns, "JSONL", cfg.where());
        const auto val_patterns = cdrmix::path_patterns(cfg, "val_path");
        const auto val_files = val_patterns.empty() ? files : cdrmix::expand_paths(val_patterns, "JSONL", cfg.where());
        if (!val_patterns.empty() && cfg.has("val_fraction"))
            throw Error(cfg.where() + ": give 'val_path' or 'val_fraction', not both");
        if (val_patterns.empty()) s_.every = std::max<int64_t>(2, std::llround(1.0 / cdrmix::read_val_fraction(cfg)));
        s_.format = cdrmix::read_record_format(cfg);
        s_.shuffle_buffer = cfg.get_int("shuffle_buffer");
        s_.split = cdrmix::read_split_options(cfg);

        std::vector<std::string> all = files;
        if (!val_patterns.empty()) all.insert(all.end(), val_files.begin(), val_files.end());
        tokenizer_ = cdrmix::tokenizer_from_spec(cfg.get_string("tokenizer"), visit_text(all), cfg.where());
        if (s_.format.eos_id >= tokenizer_->vocab_size())
            throw Error(cfg.where() + ": key 'eos_id' is outside the vocabulary of " + std::to_string(tokenizer_->vocab_size()));
        for (const auto &f : all) bytes_ += static_cast<int64_t>(std::filesystem::file_size(f));
        files_ = all.size();
        const bool all_lines = !val_patterns.empty();
        train_ = std::make_unique<SplitStream>(files, false, all_lines, tokenizer_, s_, bad_);
        val_ = std::make_unique<SplitStream>(val_files, true, all_lines, tokenizer_, s_, bad_);
    }

    at::Tensor next_batch(cdrmix::Split split, int64_t batch, int64_t seq_len) override {
        if (batch < 1 || seq_len < 1) throw Error(s_.where + ": batch size and seq_len must be positive");
        at::Tensor out = torch::empty({batch, seq_len + 1}, torch::kInt64);
        for (int64_t b = 0; b < batch; ++b) stream(split).next(seq_len, out.data_ptr<int64_t>() + b * (seq_len + 1));
        return out;
    }
    std::shared_ptr<cdrmix::Tokenizer> tokenizer() const override { return tokenizer_; }
    // Streaming: the size is not known without reading every shard.
    int64_t num_tokens(cdrmix::Split) const override { return -1; }
    void reset(cdrmix::Split split) override { stream(split).reset(); }
    Json position() const override {
        return {{"source", "jsonl"}, {"train", train_->position()}, {"val", val_->position()}};
    }
    void restore(const Json &p) override {
        if (!p.is_object() || p.value("source", "") != "jsonl" || !p.contains("train") || !p.contains("val"))
            throw Error(s_.where + ": the saved data position " + p.dump().substr(0, 120) + " is not a position of a 'jsonl' source");
        train_->restore(p.at("train"));
        val_->restore(p.at("val"));
    }
    std::string describe() const override {
        return "jsonl: " + std::to_string(files_) + " file(s), " + std::to_string(bytes_ / 1024) + " KiB, " +
               tokenizer_->kind() + " tokens, vocabulary " + std::to_string(tokenizer_->vocab_size()) + ", " +
               std::to_string(bad_.count()) + " malformed line(s) skipped so far";
    }

private:
    SplitStream &stream(cdrmix::Split split) { return split == cdrmix::Split::Train ? *train_ : *val_; }

    // The text of every record, for a char vocabulary (one pass, flat memory).
    cdrmix::CorpusVisitor visit_text(const std::vector<std::string> &files) {
        return [this, files](const std::function<void(const std::string &)> &sink) {
            std::string line, text;
            for (const auto &f : files) {
                cdrmix::JsonlLines lines(f);
                while (lines.next(line)) {
                    try {
                        if (cdrmix::record_text(line, s_.format, f, lines.line(), text)) sink(text);
                    } catch (const Error &e) {
                        if (!s_.format.skip_malformed) throw;
                        bad_.note(e.what(), f, lines.line());
                    }
                }
            }
        };
    }

    Settings s_;
    BadLines bad_;
    std::shared_ptr<cdrmix::Tokenizer> tokenizer_;
    std::unique_ptr<SplitStream> train_, val_;
    size_t files_ = 0;
    int64_t bytes_ = 0;
};

cdrmix::Schema schema() {
    cdrmix::Schema s("JSONL shards ({\"text\"} or {\"tokens\"/\"input_ids\"}), streamed and packed");
    s.include(cdrmix::path_keys("JSONL"));
    s.include(cdrmix::val_path_keys("JSONL"));
    s.include(cdrmix::val_fraction_keys());
    s.string("tokenizer", "byte", "\"byte\", \"char\" (built from the records' text), or a tokenizer file");
    s.include(cdrmix::record_format_keys());
    s.integer("shuffle_buffer", 1024, "sequences shuffled together in one block (train split)").min(1);
    s.include(cdrmix::split_keys());
    return s;
}

} // namespace

CDRMIX_PLUGIN("jsonl", "1.0.0", "Streaming JSONL shards: text or pre-tokenised records") {
    const cdrmix::Schema s = schema();
    registry.add_data_source("jsonl", s.doc(), s,
                             [](const cdrmix::Config &c) { return std::make_shared<JsonlSource>(c); });
}
