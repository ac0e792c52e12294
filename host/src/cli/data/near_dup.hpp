// Near-duplicate detection for `cdrmix data dedup`: MinHash signatures of a
// document's word shingles and an LSH index over bands of them. Memory holds
// the signatures and band keys of the documents kept, never their texts.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace cdrmix {

struct MinHashOptions {
    int64_t shingle = 5;    // words per shingle
    int64_t num_perm = 128; // hash functions (signature length)
    uint64_t seed = 1;      // picks the hash functions; signatures compare only under one seed
};

// Checks the ranges (shingle >= 1, 1 <= num_perm <= 1024); throws cdrmix::Error naming the flag.
void check_minhash_options(const MinHashOptions &o);

// The minimum of each hash function over the text's shingles: k consecutive
// words, a word being a run of bytes other than ASCII whitespace. A text of
// fewer than k words is one shingle; one without words has an empty set and
// the all-maximum signature (so empty texts match each other).
std::vector<uint32_t> minhash_signature(const std::string &text, const MinHashOptions &o);

// Share of equal positions: the estimate of the two shingle sets' Jaccard similarity.
double estimated_jaccard(const uint32_t *a, const uint32_t *b, int64_t n);

// Bands for a threshold: the number b (with r = num_perm / b rows each) whose
// candidate probability 1 - (1 - s^r)^b best separates similarities below the
// threshold from those above it: least false-positive area plus nine times the
// false-negative area (candidates are verified, misses are not).
int64_t choose_bands(double threshold, int64_t num_perm);

// The documents kept so far. A document is a near-duplicate when some kept
// document shares one of its band keys (a candidate) and the signatures'
// estimated Jaccard is at least the threshold; otherwise it is kept, so the
// first document of each cluster survives. Chains (A~B, B~C, A!~C) keep A and C.
class NearDuplicateIndex {
public:
    // bands in [1, num_perm]; the rows num_perm / bands (trailing positions are in no band).
    NearDuplicateIndex(int64_t num_perm, int64_t bands, double threshold);
    // True (and the document is not added) when it near-duplicates a kept one.
    bool is_duplicate_else_add(const std::vector<uint32_t> &signature);
    int64_t kept() const { return kept_; }
    int64_t rows() const { return rows_; }

private:
    uint64_t band_key(const uint32_t *signature, int64_t band) const;

    int64_t num_perm_, bands_, rows_;
    double threshold_;
    int64_t kept_ = 0;
    std::vector<uint32_t> signatures_;                    // kept documents', num_perm each
    std::unordered_multimap<uint64_t, uint32_t> buckets_; // band key -> kept document
};

} // namespace cdrmix
