// Length-bucketed batches of whole conversations (the chat source's
// packing = "bucket"): each row starts at a conversation's first token and is
// padded to its bucket's length, so rows never start mid-conversation and a
// batch's rows have similar lengths (little padding).
//
// Rows: a conversation of n tokens that fits the largest bucket L (n <= L + 1)
// is one row; a longer one is cut as windows are (rows of L + 1 tokens with
// stride L, so each target is in exactly one row). Rows that hold no target
// with loss are dropped: they would train nothing. A row goes to the
// smallest bucket b with n <= b + 1, and a batch from bucket b is
// [batch, b + 1] tokens with the targets after a row's end masked out (pad
// token 0).
//
// Order: the bucket of the k-th batch of a split is drawn by a counter-based
// hash of (seed, split, k), weighted by the bucket's rows, so every row is read
// at the same rate; within a bucket, rows come in a seeded permutation per
// epoch of that bucket (train with shuffle; val in file order), rank r of
// world_size taking positions r, r + world_size, ... The state is the batch
// counter and the rows consumed per bucket, per split: the position JSON.
#pragma once

#include <cdrmix/data_source.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/window_source.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix::chat {

// One split's tokens end to end, their 0/1 loss flags, and where each
// conversation starts (ascending; the last ends at the end of the tokens).
struct PackedSplit {
    std::vector<uint32_t> tokens, mask;
    std::vector<int64_t> starts;
};

struct Row {
    int64_t start = 0, length = 0; // tokens [start, start + length) of the split
};

// The rows of a split for the largest bucket `longest` (see the top).
std::vector<Row> conversation_rows(const PackedSplit &split, int64_t longest);

// The bucket lengths of a config's `buckets`: positive, strictly increasing.
// Throws one line naming the key otherwise.
std::vector<int64_t> read_bucket_lengths(const Json &value, const std::string &where);

class BucketReader {
public:
    BucketReader(const PackedSplit &split, std::vector<int64_t> lengths, SplitOptions options, Split which,
                 std::string label);

    struct Batch {
        at::Tensor tokens, mask; // int64 [B, b + 1], float [B, b]
    };
    // seq_len bounds the row length: a bucket longer than it is an error.
    Batch next(int64_t batch, int64_t seq_len);
    void reset();
    Json position() const;             // {"batches": k, "rows": [per bucket]}
    void restore(const Json &position); // throws naming the label on a malformed one

private:
    const PackedSplit &split_;
    std::vector<int64_t> lengths_;
    SplitOptions options_;
    bool shuffle_;
    uint64_t salt_;
    std::string label_;
    std::vector<std::vector<Row>> buckets_; // every rank's rows, in file order
    std::vector<int64_t> per_rank_;         // rows a rank reads per epoch of each bucket
    int64_t total_per_rank_ = 0;
    int64_t batches_ = 0;
    std::vector<int64_t> consumed_; // rows this rank has read per bucket

    size_t draw_bucket(int64_t k) const;
    const Row &row(size_t bucket, int64_t n) const;
};

} // namespace cdrmix::chat
