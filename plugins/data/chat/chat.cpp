// Chat data source: JSONL conversations (cdrmix/chat.hpp) rendered through a
// chat template and packed into sequences, with a loss mask (cdrmix/loss_mask.hpp)
// that keeps the assistant's tokens (and, per option, its tool calls) and
// nothing else.
//
// The files are read, rendered and tokenised when the source is created and
// held in memory (4 bytes a token, plus 4 for its mask): chat sets for fine
// tuning are small. Each rendered piece is tokenised on its own, so a token
// never straddles a piece with loss and one without. Conversations are packed
// end to end into one stream per split, cut and ordered as every window source
// is (cdrmix/window_source.hpp); the mask is a second stream of 0/1 read
// through a second window source with the same options, so both choose the
// same windows and the position is the token source's.
//
// With packing = "bucket" rows are whole conversations instead, grouped by
// length (bucket_batches.hpp); the windows above stay the default because they
// waste no token on padding.
//
// The val split is val_path's files or, without them, every
// round(1 / val_fraction)-th conversation of the train files.
#include "bucket_batches.hpp"

#include <cdrmix/chat.hpp>
#include <cdrmix/data_paths.hpp>
#include <cdrmix/jsonl.hpp>
#include <cdrmix/loss_mask.hpp>
#include <cdrmix/sdk.hpp>
#include <cdrmix/window_source.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <memory>

namespace {

using cdrmix::Error;
using cdrmix::Json;

struct Rendered {
    std::vector<std::vector<cdrmix::ChatSegment>> train, val;
    int64_t skipped = 0;
};

using cdrmix::chat::PackedSplit;

const std::vector<int64_t> kDefaultBuckets = {64, 128, 256};

class ChatSource final : public cdrmix::DataSource, public cdrmix::LossMaskSource {
public:
    explicit ChatSource(const cdrmix::Config &cfg) : where_(cfg.where()) {
        const auto files = cdrmix::expand_paths(cdrmix::path_patterns(cfg, "path"), "JSONL", where_);
        const auto val_patterns = cdrmix::path_patterns(cfg, "val_path");
        if (!val_patterns.empty() && cfg.has("val_fraction"))
            throw Error(where_ + ": give 'val_path' or 'val_fraction', not both");
        const cdrmix::ChatTemplate tmpl = cdrmix::chat_template_from_spec(cfg.get_string("template"), where_);
        const bool tool_loss = cfg.get_bool("loss_on_tool_calls");
        skip_ = cfg.get_string("on_error") == "skip";

        Rendered r;
        if (val_patterns.empty()) {
            const int64_t every = std::max<int64_t>(2, std::llround(1.0 / cdrmix::read_val_fraction(cfg)));
            int64_t n = 0;
            for (const auto &f : files)
                read_file(f, tmpl, tool_loss, [&](std::vector<cdrmix::ChatSegment> s) {
                    (++n % every == 0 ? r.val : r.train).push_back(std::move(s));
                });
        } else {
            for (const auto &f : files)
                read_file(f, tmpl, tool_loss, [&](std::vector<cdrmix::ChatSegment> s) { r.train.push_back(std::move(s)); });
            for (const auto &f : cdrmix::expand_paths(val_patterns, "JSONL", where_))
                read_file(f, tmpl, tool_loss, [&](std::vector<cdrmix::ChatSegment> s) { r.val.push_back(std::move(s)); });
        }
        if (r.train.empty()) throw Error(where_ + ": no conversation in the train split");
        if (r.val.empty()) throw Error(where_ + ": no conversation in the val split (add data, raise val_fraction, or give val_path)");

        tokenizer_ = cdrmix::tokenizer_from_spec(
            cfg.get_string("tokenizer"),
            [&r](const std::function<void(const std::string &)> &sink) {
                for (const auto *split : {&r.train, &r.val})
                    for (const auto &conv : *split)
                        for (const auto &s : conv) sink(s.text);
            },
            where_);
        train_ = tokenise(r.train);
        val_ = tokenise(r.val);
        conversations_ = static_cast<int64_t>(r.train.size() + r.val.size());
        train_tokens_ = static_cast<int64_t>(train_.tokens.size());
        for (uint32_t m : train_.mask) trained_ += m;

        const cdrmix::SplitOptions split = cdrmix::read_split_options(cfg);
        if (cfg.get_string("packing") == "bucket") {
            bucket_lengths_ = cfg.has("buckets") ? cdrmix::chat::read_bucket_lengths(cfg.value()["buckets"], where_)
                                                 : kDefaultBuckets;
            bucket_train_ = std::make_unique<cdrmix::chat::BucketReader>(train_, bucket_lengths_, split, cdrmix::Split::Train,
                                                                         "the train split of " + where_);
            bucket_val_ = std::make_unique<cdrmix::chat::BucketReader>(val_, bucket_lengths_, split, cdrmix::Split::Val,
                                                                       "the val split of " + where_);
            return;
        }
        if (cfg.has("buckets")) throw Error(where_ + ": 'buckets' is read only with packing = \"bucket\"");
        // The streams move into the window sources, which keep the only copy.
        auto parts = [&](bool masks) {
            cdrmix::WindowSourceParts p;
            p.type = "chat";
            p.where = where_;
            p.split = split;
            p.tokenizer = tokenizer_;
            p.train = cdrmix::tokens_in_memory(std::move(masks ? train_.mask : train_.tokens));
            p.val = cdrmix::tokens_in_memory(std::move(masks ? val_.mask : val_.tokens));
            return p;
        };
        tokens_ = cdrmix::make_window_source(parts(false));
        masks_ = cdrmix::make_window_source(parts(true));
    }

    at::Tensor next_batch(cdrmix::Split split, int64_t batch, int64_t seq_len) override {
        if (bucketed()) {
            auto b = bucket(split).next(batch, seq_len);
            last_mask_ = b.mask;
            return b.tokens;
        }
        at::Tensor out = tokens_->next_batch(split, batch, seq_len);
        last_mask_ = masks_->next_batch(split, batch, seq_len).slice(1, 1).to(torch::kFloat32);
        return out;
    }
    at::Tensor last_mask() const override { return last_mask_; }
    std::shared_ptr<cdrmix::Tokenizer> tokenizer() const override { return tokenizer_; }
    int64_t num_tokens(cdrmix::Split split) const override {
        if (!bucketed()) return tokens_->num_tokens(split);
        return static_cast<int64_t>((split == cdrmix::Split::Train ? train_ : val_).tokens.size());
    }
    void reset(cdrmix::Split split) override {
        if (bucketed()) return bucket(split).reset();
        tokens_->reset(split);
        masks_->reset(split);
    }
    // Bucketed: {"source": "chat", "packing": "bucket", "buckets": [...],
    // "train": {"batches", "rows"}, "val": {...}}; windows: the window source's.
    Json position() const override {
        if (!bucketed()) return tokens_->position();
        return {{"source", "chat"}, {"packing", "bucket"}, {"buckets", bucket_lengths_},
                {"train", bucket_train_->position()}, {"val", bucket_val_->position()}};
    }
    void restore(const Json &p) override {
        const bool saved_bucketed = p.is_object() && p.value("packing", "window") == "bucket";
        if (saved_bucketed != bucketed() || (bucketed() && p.value("buckets", Json()) != Json(bucket_lengths_)))
            throw Error(where_ + ": the saved data position " + p.dump().substr(0, 120) +
                        " was made with other packing or buckets than this source's (" + packing_text() + ")");
        if (bucketed()) {
            bucket_train_->restore(p.value("train", Json()));
            bucket_val_->restore(p.value("val", Json()));
            return;
        }
        tokens_->restore(p);
        masks_->restore(p);
    }
    std::string describe() const override {
        return "chat: " + std::to_string(conversations_) + " conversation(s), " + std::to_string(train_tokens_) +
               " train tokens of which " + std::to_string(trained_) + " have loss, " + tokenizer_->kind() +
               " tokens, vocabulary " + std::to_string(tokenizer_->vocab_size()) + ", " + packing_text() + ", " +
               std::to_string(skipped_) + " malformed line(s) skipped";
    }

private:
    template <class Sink>
    void read_file(const std::string &path, const cdrmix::ChatTemplate &tmpl, bool tool_loss, Sink sink) {
        cdrmix::JsonlLines lines(path);
        std::string line;
        while (lines.next(line)) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            const std::string at = path + ":" + std::to_string(lines.line());
            try {
                Json record;
                try {
                    record = Json::parse(line);
                } catch (const Json::exception &e) {
                    throw Error(at + ": not valid JSON: " + e.what());
                }
                sink(cdrmix::render_conversation(tmpl, cdrmix::parse_conversation(record, at), tool_loss));
            } catch (const Error &e) {
                if (!skip_) throw;
                if (++skipped_ <= 5) std::fprintf(stderr, "cdrmix: warning: %s; skipped\n", e.what());
                if (skipped_ == 6) std::fprintf(stderr, "cdrmix: warning: more malformed lines skipped (counted, not shown)\n");
            }
        }
    }

    bool bucketed() const { return bucket_train_ != nullptr; }
    cdrmix::chat::BucketReader &bucket(cdrmix::Split split) {
        return split == cdrmix::Split::Train ? *bucket_train_ : *bucket_val_;
    }
    std::string packing_text() const {
        return bucketed() ? "packing bucket " + Json(bucket_lengths_).dump() : std::string("packing window");
    }

    PackedSplit tokenise(const std::vector<std::vector<cdrmix::ChatSegment>> &conversations) const {
        PackedSplit s;
        for (const auto &conv : conversations) {
            s.starts.push_back(static_cast<int64_t>(s.tokens.size()));
            for (const auto &seg : conv)
                for (int64_t id : tokenizer_->encode(seg.text)) {
                    s.tokens.push_back(static_cast<uint32_t>(id));
                    s.mask.push_back(seg.loss ? 1 : 0);
                }
        }
        return s;
    }

    std::string where_;
    bool skip_ = false;
    int64_t skipped_ = 0, conversations_ = 0, trained_ = 0, train_tokens_ = 0;
    std::shared_ptr<cdrmix::Tokenizer> tokenizer_;
    PackedSplit train_, val_; // packing = "bucket" reads them; "window" moves their streams out
    // packing = "window": the token and mask streams through window sources.
    std::shared_ptr<cdrmix::DataSource> tokens_, masks_;
    // packing = "bucket": whole conversations by length.
    std::vector<int64_t> bucket_lengths_;
    std::unique_ptr<cdrmix::chat::BucketReader> bucket_train_, bucket_val_;
    at::Tensor last_mask_;
};

cdrmix::Schema schema() {
    cdrmix::Schema s("JSONL chat conversations through a chat template, loss on the assistant's tokens only");
    s.include(cdrmix::path_keys("JSONL"));
    s.include(cdrmix::val_path_keys("JSONL"));
    s.include(cdrmix::val_fraction_keys());
    s.string("tokenizer", "byte", "\"byte\", \"char\" (built from the rendered conversations), or a tokenizer file");
    s.string("template", "cdrmix", "a built-in chat template (\"cdrmix\") or a YAML template file (docs/finetuning.md)");
    s.boolean("loss_on_tool_calls", true, "the assistant's tool calls are training targets too");
    s.string("on_error", "fail", "a malformed conversation stops the run, or is warned about and skipped")
        .one_of({"fail", "skip"});
    s.string("packing", "window",
             "window: the token stream cut into seq_len windows; bucket: each row one conversation (or a piece of one), "
             "padded, rows of similar length batched together")
        .one_of({"window", "bucket"});
    s.list("buckets", "packing = bucket: row lengths in tokens, increasing (a batch's length is its bucket's)")
        .default_is(Json(kDefaultBuckets).dump());
    s.include(cdrmix::split_keys());
    return s;
}

} // namespace

CDRMIX_PLUGIN("chat", "1.0.0", "JSONL chat conversations through a template, with an assistant-only loss mask") {
    const cdrmix::Schema s = schema();
    registry.add_data_source("chat", s.doc(), s, [](const cdrmix::Config &c) { return std::make_shared<ChatSource>(c); });
}
