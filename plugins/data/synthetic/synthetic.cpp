// Synthetic tasks for tests and long-context research. Every sequence is one
// example generated for the requested length (seq_len + 1 tokens) from
// (seed, split, example index), over a fixed character vocabulary, so the
// text decodes to something readable and a checkpoint's tokenizer.json covers it.
//
//   copy      "qmzkt=qmzkt."          a random string, '=', the same string, '.' padding
//   recall    "K3B7Q1xhtwp?B7?K3"     key/value pairs (upper-case key, digit value), random
//                                     lower-case filler, then queries "?<key><value>" at the end
//   counting  "a1b1a2c1a3"            symbols, each followed by its running count mod 10
//
// Order, sharding and position are those of cdrmix/window_source.hpp with
// examples in place of windows: train_size / val_size examples per epoch.
#include <cdrmix/sdk.hpp>
#include <cdrmix/window_source.hpp>

#include <torch/torch.h>

#include <random>

namespace {

using cdrmix::Error;

const std::string kAlphabet = "\n.=?0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

enum class Task { Copy, Recall, Counting };

struct TaskSettings {
    Task task = Task::Copy;
    int64_t num_pairs = 0, queries = 0, symbols = 0; // from the config (schema defaults)
};

char pick(std::mt19937_64 &rng, char first, int64_t count) {
    return static_cast<char>(first + std::uniform_int_distribution<int64_t>(0, count - 1)(rng));
}

std::string copy_example(int64_t n, std::mt19937_64 &rng) {
    const int64_t m = (n - 1) / 2;
    std::string s;
    for (int64_t i = 0; i < m; ++i) s += pick(rng, 'a', 26);
    std::string out = s + "=" + s;
    out.resize(static_cast<size_t>(n), '.');
    return out;
}

std::string recall_example(int64_t n, const TaskSettings &t, std::mt19937_64 &rng) {
    std::string keys = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    std::shuffle(keys.begin(), keys.end(), rng);
    std::string values, out;
    for (int64_t i = 0; i < t.num_pairs; ++i) {
        values += pick(rng, '0', 10);
        out += keys[static_cast<size_t>(i)];
        out += values.back();
    }
    const int64_t filler = n - 2 * t.num_pairs - 3 * t.queries;
    for (int64_t i = 0; i < filler; ++i) out += pick(rng, 'a', 26);
    for (int64_t q = 0; q < t.queries; ++q) {
        const auto k = static_cast<size_t>(std::uniform_int_distribution<int64_t>(0, t.num_pairs - 1)(rng));
        out += '?';
        out += keys[k];
        out += values[k];
    }
    return out;
}

std::string counting_example(int64_t n, const TaskSettings &t, std::mt19937_64 &rng) {
    std::vector<int> counts(static_cast<size_t>(t.symbols), 0);
    std::string out;
    while (static_cast<int64_t>(out.size()) < n) {
        const char c = pick(rng, 'a', t.symbols);
        out += c;
        int &count = counts[static_cast<size_t>(c - 'a')];
        count = (count + 1) % 10;
        out += static_cast<char>('0' + count);
    }
    out.resize(static_cast<size_t>(n));
    return out;
}

class SyntheticSource final : public cdrmix::DataSource {
public:
    explicit SyntheticSource(const cdrmix::Config &cfg) : where_(cfg.where()) {
        const std::string task = cfg.get_string("task");
        t_.task = task == "recall" ? Task::Recall : task == "counting" ? Task::Counting : Task::Copy;
        t_.num_pairs = cfg.get_int("num_pairs");
        t_.queries = cfg.get_int("queries");
        t_.symbols = cfg.get_int("symbols");
        task_name_ = task;
        size_[0] = cfg.get_int("train_size");
        size_[1] = cfg.get_int("val_size");
        split_ = cdrmix::read_split_options(cfg);
        for (int64_t s : size_)
            if (s < split_.world_size)
                throw Error(where_ + ": keys 'train_size' and 'val_size' need at least one example per rank");
        tokenizer_ = cdrmix::make_char_tokenizer(kAlphabet);
        for (size_t i = 0; i < kAlphabet.size(); ++i) id_[static_cast<unsigned char>(kAlphabet[i])] = tokenizer_->encode(kAlphabet.substr(i, 1))[0];
    }

    at::Tensor next_batch(cdrmix::Split split, int64_t batch, int64_t seq_len) override {
        const int s = split == cdrmix::Split::Train ? 0 : 1;
        const int64_t n = seq_len + 1;
        if (t_.task == Task::Recall && n < 2 * t_.num_pairs + 3 * t_.queries)
            throw Error(where_ + ": seq_len + 1 = " + std::to_string(n) + " is too short for " +
                        std::to_string(t_.num_pairs) + " pairs and " + std::to_string(t_.queries) +
                        " queries (needs 2 * num_pairs + 3 * queries)");
        if (batch < 1 || seq_len < 1) throw Error(where_ + ": batch size and seq_len must be positive");
        last_length_ = n;
        at::Tensor out = torch::empty({batch, n}, torch::kInt64);
        int64_t *dst = out.data_ptr<int64_t>();
        const int64_t per_rank = size_[s] / split_.world_size;
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t c = consumed_[s]++;
            const int64_t slot = split_.rank + (c % per_rank) * split_.world_size;
            const bool shuffle = s == 0 && split_.shuffle;
            const int64_t example =
                shuffle ? cdrmix::permuted_index(slot, size_[s], cdrmix::mix_key({split_.seed, 0, uint64_t(c / per_rank)}))
                        : slot;
            const std::string text = generate(s, example, n);
            for (int64_t i = 0; i < n; ++i) dst[b * n + i] = id_[static_cast<unsigned char>(text[static_cast<size_t>(i)])];
        }
        return out;
    }

    std::shared_ptr<cdrmix::Tokenizer> tokenizer() const override { return tokenizer_; }
    // Examples are generated at the length asked for: unknown before the first batch.
    int64_t num_tokens(cdrmix::Split split) const override {
        return last_length_ == 0 ? -1 : size_[split == cdrmix::Split::Train ? 0 : 1] * last_length_;
    }
    void reset(cdrmix::Split split) override { consumed_[split == cdrmix::Split::Train ? 0 : 1] = 0; }
    cdrmix::Json position() const override {
        return {{"source", "synthetic"}, {"train", consumed_[0]}, {"val", consumed_[1]}};
    }
    void restore(const cdrmix::Json &p) override {
        if (!p.is_object() || p.value("source", "") != "synthetic" || !p.contains("train") || !p.contains("val") ||
            !p["train"].is_number_integer() || !p["val"].is_number_integer())
            throw Error(where_ + ": the saved data position " + p.dump().substr(0, 120) +
                        " is not a position of a 'synthetic' source");
        consumed_[0] = p["train"].get<int64_t>();
        consumed_[1] = p["val"].get<int64_t>();
    }
    std::string describe() const override {
        return "synthetic " + task_name_ + ": " + std::to_string(size_[0]) + " train + " + std::to_string(size_[1]) +
               " val examples, vocabulary " + std::to_string(tokenizer_->vocab_size());
    }

private:
    std::string generate(int split, int64_t example, int64_t n) const {
        std::mt19937_64 rng(cdrmix::mix_key({split_.seed, uint64_t(split) + 1, uint64_t(example)}));
        switch (t_.task) {
        case Task::Copy: return copy_example(n, rng);
        case Task::Recall: return recall_example(n, t_, rng);
        case Task::Counting: return counting_example(n, t_, rng);
        }
        return {};
    }

    std::string where_, task_name_;
    TaskSettings t_;
    cdrmix::SplitOptions split_;
    int64_t size_[2] = {0, 0};
    int64_t consumed_[2] = {0, 0};
    int64_t last_length_ = 0;
    std::shared_ptr<cdrmix::Tokenizer> tokenizer_;
    int64_t id_[256] = {};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Generated copy / associative recall / counting examples");
    s.string("task", nullptr, "which task to generate").one_of({"copy", "recall", "counting"}).required();
    s.integer("train_size", 100000, "examples per train epoch").min(1);
    s.integer("val_size", 256, "examples in the val split").min(1);
    s.integer("num_pairs", 16, "recall: key/value pairs per example").range(1, 26);
    s.integer("queries", 4, "recall: queries at the end of each example").min(1);
    s.integer("symbols", 4, "counting: distinct symbols").range(1, 26);
    s.include(cdrmix::split_keys());
    return s;
}

} // namespace

CDRMIX_PLUGIN("synthetic", "1.0.0", "Synthetic tasks: copy, associative recall, counting") {
    const cdrmix::Schema s = schema();
    registry.add_data_source("synthetic", s.doc(), s,
                             [](const cdrmix::Config &c) { return std::make_shared<SyntheticSource>(c); });
}
