#include "bucket_batches.hpp"

#include <cdrmix/error.hpp>

#include <ATen/ATen.h>

#include <algorithm>

namespace cdrmix::chat {

namespace {

bool has_loss_target(const PackedSplit &split, const Row &r) {
    // Targets are the row's tokens after its first.
    const auto begin = split.mask.begin() + r.start + 1, end = split.mask.begin() + r.start + r.length;
    return std::find(begin, end, 1u) != end;
}

} // namespace

std::vector<Row> conversation_rows(const PackedSplit &split, int64_t longest) {
    std::vector<Row> rows;
    const auto total = static_cast<int64_t>(split.tokens.size());
    for (size_t c = 0; c < split.starts.size(); ++c) {
        const int64_t begin = split.starts[c];
        const int64_t end = c + 1 < split.starts.size() ? split.starts[c + 1] : total;
        for (int64_t at = begin; at + 1 < end; at += longest) {
            const Row piece{at, std::min(longest + 1, end - at)};
            if (has_loss_target(split, piece)) rows.push_back(piece);
        }
    }
    return rows;
}

std::vector<int64_t> read_bucket_lengths(const Json &value, const std::string &where) {
    // A bound far above any model's context keeps (b + 1) * batch well inside int64.
    constexpr int64_t kMaxLength = int64_t(1) << 24;
    std::vector<int64_t> lengths;
    if (!value.is_array() || value.empty())
        throw Error(where + ": 'buckets' must be a list of row lengths in tokens, such as [64, 128, 256]");
    for (const Json &v : value) {
        if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxLength)
            throw Error(where + ": 'buckets': " + v.dump() + " is not a row length (an integer from 1 to " +
                        std::to_string(kMaxLength) + ")");
        if (!lengths.empty() && v.get<int64_t>() <= lengths.back())
            throw Error(where + ": 'buckets' must be strictly increasing, got " + value.dump());
        lengths.push_back(v.get<int64_t>());
    }
    return lengths;
}

BucketReader::BucketReader(const PackedSplit &split, std::vector<int64_t> lengths, SplitOptions options, Split which,
                           std::string label)
    : split_(split), lengths_(std::move(lengths)), options_(options),
      shuffle_(options.shuffle && which == Split::Train), salt_(which == Split::Train ? 0 : 1),
      label_(std::move(label)), buckets_(lengths_.size()), per_rank_(lengths_.size()), consumed_(lengths_.size()) {
    for (const Row &r : conversation_rows(split, lengths_.back())) {
        const auto b = std::lower_bound(lengths_.begin(), lengths_.end(), r.length - 1) - lengths_.begin();
        buckets_[static_cast<size_t>(b)].push_back(r);
    }
    for (size_t b = 0; b < buckets_.size(); ++b) {
        per_rank_[b] = static_cast<int64_t>(buckets_[b].size()) / options_.world_size;
        total_per_rank_ += per_rank_[b];
    }
    if (total_per_rank_ == 0)
        throw Error(label_ + " has no row with a loss target for " + std::to_string(options_.world_size) +
                    " rank(s) (add conversations with assistant turns)");
}

size_t BucketReader::draw_bucket(int64_t k) const {
    int64_t pick = static_cast<int64_t>(mix_key({options_.seed, salt_, uint64_t(k)}) % uint64_t(total_per_rank_));
    size_t b = 0;
    while (pick >= per_rank_[b]) pick -= per_rank_[b++];
    return b;
}

const Row &BucketReader::row(size_t bucket, int64_t n) const {
    const int64_t per_rank = per_rank_[bucket], size = static_cast<int64_t>(buckets_[bucket].size());
    const int64_t epoch = n / per_rank;
    const int64_t slot = options_.rank + (n % per_rank) * options_.world_size;
    const int64_t at =
        shuffle_ ? permuted_index(slot, size, mix_key({options_.seed, salt_, uint64_t(bucket), uint64_t(epoch)})) : slot;
    return buckets_[bucket][static_cast<size_t>(at)];
}

BucketReader::Batch BucketReader::next(int64_t batch, int64_t seq_len) {
    if (batch < 1 || seq_len < 1) throw Error(label_ + ": batch size and seq_len must be positive");
    const size_t b = draw_bucket(batches_);
    const int64_t T = lengths_[b];
    if (T > seq_len)
        throw Error(label_ + ": bucket " + std::to_string(T) + " is longer than seq_len " + std::to_string(seq_len) +
                    " (give 'buckets' no longer than the trainer's seq_len)");
    ++batches_;
    Batch out{at::zeros({batch, T + 1}, at::kLong), at::zeros({batch, T}, at::kFloat)};
    auto tokens = out.tokens.accessor<int64_t, 2>();
    auto mask = out.mask.accessor<float, 2>();
    for (int64_t i = 0; i < batch; ++i) {
        const Row &r = row(b, consumed_[b]++);
        for (int64_t t = 0; t < r.length; ++t) tokens[i][t] = split_.tokens[static_cast<size_t>(r.start + t)];
        for (int64_t t = 0; t + 1 < r.length; ++t) mask[i][t] = float(split_.mask[static_cast<size_t>(r.start + t + 1)]);
    }
    return out;
}

void BucketReader::reset() {
    batches_ = 0;
    std::fill(consumed_.begin(), consumed_.end(), 0);
}

Json BucketReader::position() const { return {{"batches", batches_}, {"rows", consumed_}}; }

void BucketReader::restore(const Json &p) {
    auto count = [](const Json &v) { return v.is_number_integer() && v.get<int64_t>() >= 0; };
    bool ok = p.is_object() && p.contains("batches") && count(p["batches"]) && p.contains("rows") &&
              p["rows"].is_array() && p["rows"].size() == consumed_.size();
    for (size_t b = 0; ok && b < consumed_.size(); ++b) ok = count(p["rows"][b]);
    if (!ok)
        throw Error(label_ + ": the saved position " + p.dump().substr(0, 120) + " is not one of " +
                    std::to_string(consumed_.size()) + " bucket(s)");
    batches_ = p["batches"].get<int64_t>();
    for (size_t b = 0; b < consumed_.size(); ++b) consumed_[b] = p["rows"][b].get<int64_t>();
}

} // namespace cdrmix::chat
