#include <cdrmix/error.hpp>
#include <cdrmix/window_source.hpp>

#include <ATen/ATen.h>

#include <sstream>

namespace cdrmix {

namespace {

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// One split's reader: which window comes next for this rank.
class WindowReader {
public:
    // hint: how to make this split long enough (which way val_fraction goes differs per split).
    WindowReader(std::shared_ptr<TokenSequence> tokens, SplitOptions options, bool shuffle, uint64_t salt,
                 std::string label, std::string hint)
        : tokens_(std::move(tokens)), options_(options), shuffle_(shuffle), salt_(salt), label_(std::move(label)),
          hint_(std::move(hint)) {}

    void read(int64_t batch, int64_t seq_len, int64_t *out) {
        if (seq_len < 1 || batch < 1) throw Error(label_ + ": batch size and seq_len must be positive");
        const int64_t windows = (tokens_->size() - 1) / seq_len;
        const int64_t per_rank = windows / options_.world_size;
        if (per_rank < 1)
            throw Error(label_ + " has " + std::to_string(tokens_->size()) + " tokens: " + std::to_string(windows) +
                        " sequence(s) of seq_len + 1 = " + std::to_string(seq_len + 1) + " for " +
                        std::to_string(options_.world_size) +
                        " rank(s) (" + hint_ + ")");
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t n = consumed++;
            const int64_t epoch = n / per_rank;
            const int64_t slot = options_.rank + (n % per_rank) * options_.world_size;
            const int64_t window =
                shuffle_ ? permuted_index(slot, windows, mix_key({options_.seed, salt_, uint64_t(epoch)})) : slot;
            tokens_->read(window * seq_len, seq_len + 1, out + b * (seq_len + 1));
        }
    }
    int64_t size() const { return tokens_->size(); }

    int64_t consumed = 0;

private:
    std::shared_ptr<TokenSequence> tokens_;
    SplitOptions options_;
    bool shuffle_;
    uint64_t salt_;
    std::string label_, hint_;
};

class WindowSource final : public DataSource {
public:
    explicit WindowSource(WindowSourceParts p)
        : type_(p.type), where_(p.where), description_(p.description), tokenizer_(p.tokenizer),
          train_(p.train, p.split, p.split.shuffle, 0, "the train split of " + p.where,
                 "lower seq_len or val_fraction, or add data"),
          val_(p.val, p.split, false, 1, "the val split of " + p.where, "lower seq_len, raise val_fraction, or add data") {}

    at::Tensor next_batch(Split split, int64_t batch, int64_t seq_len) override {
        at::Tensor out = at::empty({batch, seq_len + 1}, at::kLong);
        reader(split).read(batch, seq_len, out.data_ptr<int64_t>());
        return out;
    }
    std::shared_ptr<Tokenizer> tokenizer() const override { return tokenizer_; }
    int64_t num_tokens(Split split) const override {
        return split == Split::Train ? train_.size() : val_.size();
    }
    void reset(Split split) override { reader(split).consumed = 0; }
    Json position() const override { return {{"source", type_}, {"train", train_.consumed}, {"val", val_.consumed}}; }
    void restore(const Json &p) override {
        if (!p.is_object() || p.value("source", "") != type_ || !p.contains("train") || !p.contains("val") ||
            !p["train"].is_number_integer() || !p["val"].is_number_integer() || p["train"].get<int64_t>() < 0 ||
            p["val"].get<int64_t>() < 0)
            throw Error(where_ + ": the saved data position " + p.dump().substr(0, 120) + " is not a position of a '" +
                        type_ + "' source");
        train_.consumed = p["train"].get<int64_t>();
        val_.consumed = p["val"].get<int64_t>();
    }
    std::string describe() const override { return description_; }

private:
    WindowReader &reader(Split split) { return split == Split::Train ? train_ : val_; }

    std::string type_, where_, description_;
    std::shared_ptr<Tokenizer> tokenizer_;
    WindowReader train_, val_;
};

} // namespace

uint64_t mix_key(std::initializer_list<uint64_t> parts) {
    uint64_t h = 0x1234567887654321ULL;
    for (uint64_t p : parts) h = splitmix64(h ^ splitmix64(p));
    return h;
}

int64_t permuted_index(int64_t i, int64_t n, uint64_t key) {
    if (n <= 1) return 0;
    // Smallest even bit width covering n; the halves are `half` bits each.
    int bits = 2;
    while ((int64_t(1) << bits) < n) bits += 2;
    const int half = bits / 2;
    const uint64_t mask = (uint64_t(1) << half) - 1;
    uint64_t x = static_cast<uint64_t>(i);
    // Cycle walking: a permutation of [0, 2^bits) restricted to [0, n) by
    // re-applying it until the value lands inside (at most 4 tries on average).
    do {
        uint64_t left = x >> half, right = x & mask;
        for (uint64_t round = 0; round < 4; ++round) {
            const uint64_t next = left ^ (splitmix64(right ^ key ^ (round << 56)) & mask);
            left = right;
            right = next;
        }
        x = (left << half) | right;
    } while (x >= static_cast<uint64_t>(n));
    return static_cast<int64_t>(x);
}

Schema split_keys() {
    Schema s;
    s.integer("seed", 1234, "seed of the shuffled order (each epoch its own permutation)");
    s.boolean("shuffle", true, "shuffle the train split each epoch (the val split is always read in order)");
    s.integer("rank", 0, "this process's rank: it reads every world_size-th sequence from position rank").min(0);
    s.integer("world_size", 1, "processes sharing the data, each reading its own share").min(1);
    return s;
}

SplitOptions read_split_options(const Config &cfg) {
    SplitOptions o;
    o.seed = static_cast<uint64_t>(cfg.get_int("seed"));
    o.shuffle = cfg.get_bool("shuffle");
    o.rank = cfg.get_int("rank");
    o.world_size = cfg.get_int("world_size");
    if (o.rank >= o.world_size)
        throw Error(cfg.where() + ": need 0 <= rank < world_size, got rank " + std::to_string(o.rank) +
                    " and world_size " + std::to_string(o.world_size));
    return o;
}

namespace {
// val_fraction's default, given here once: the schema describes it and
// read_val_fraction applies it (see val_fraction_keys for why it is not filled).
constexpr double kValFraction = 0.1;
} // namespace

Schema val_fraction_keys() {
    std::ostringstream fallback;
    fallback << kValFraction;
    Schema s;
    s.number("val_fraction", nullptr, "share of the data held out as the val split, between 0 and 1 (exclusive)")
        .range(0, 1)
        .default_is(fallback.str());
    return s;
}

double read_val_fraction(const Config &cfg) {
    const double f = cfg.has("val_fraction") ? cfg.get_double("val_fraction") : kValFraction;
    if (!(f > 0 && f < 1)) throw Error(cfg.where("val_fraction") + ": key 'val_fraction' must be between 0 and 1 (exclusive)");
    return f;
}

std::shared_ptr<DataSource> make_window_source(WindowSourceParts parts) {
    return std::make_shared<WindowSource>(std::move(parts));
}

} // namespace cdrmix
