#include "cli/data/near_dup.hpp"

#include <cdrmix/error.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace cdrmix {

namespace {

// splitmix64's finaliser: a fast 64-bit mix whose outputs look independent for
// inputs that differ in one bit, which is all MinHash needs of a hash family.
uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// FNV-1a over a word's bytes: stable across builds, so signatures are too.
uint64_t word_hash(const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ULL;
    return h;
}

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<uint64_t> word_hashes(const std::string &text) {
    std::vector<uint64_t> words;
    for (size_t i = 0; i < text.size();) {
        while (i < text.size() && ascii_space(text[i])) ++i;
        const size_t start = i;
        while (i < text.size() && !ascii_space(text[i])) ++i;
        if (i > start) words.push_back(word_hash(text.data() + start, i - start));
    }
    return words;
}

// Distinct shingle hashes: each window of k words combined in order.
std::vector<uint64_t> shingle_hashes(const std::vector<uint64_t> &words, size_t k) {
    std::vector<uint64_t> shingles;
    if (words.empty()) return shingles;
    const size_t width = std::min(k, words.size());
    shingles.reserve(words.size() - width + 1);
    for (size_t i = 0; i + width <= words.size(); ++i) {
        uint64_t h = 0x9e3779b97f4a7c15ULL;
        for (size_t j = i; j < i + width; ++j) h = mix64(h ^ words[j]);
        shingles.push_back(h);
    }
    std::sort(shingles.begin(), shingles.end());
    shingles.erase(std::unique(shingles.begin(), shingles.end()), shingles.end());
    return shingles;
}

// Probability that a pair of similarity s shares at least one of b bands of r rows.
double candidate_probability(double s, int64_t b, int64_t r) {
    return 1.0 - std::pow(1.0 - std::pow(s, double(r)), double(b));
}

} // namespace

void check_minhash_options(const MinHashOptions &o) {
    if (o.shingle < 1) throw Error("--shingle must be at least 1 word, got " + std::to_string(o.shingle));
    if (o.num_perm < 1 || o.num_perm > 1024)
        throw Error("--num-perm must be between 1 and 1024, got " + std::to_string(o.num_perm));
}

std::vector<uint32_t> minhash_signature(const std::string &text, const MinHashOptions &o) {
    const std::vector<uint64_t> shingles = shingle_hashes(word_hashes(text), static_cast<size_t>(o.shingle));
    std::vector<uint32_t> sig(static_cast<size_t>(o.num_perm), std::numeric_limits<uint32_t>::max());
    for (size_t p = 0; p < sig.size(); ++p) {
        // Hash function p: the mix of the shingle hash xor a per-function salt;
        // the high 32 bits are kept (taking them commutes with the minimum).
        const uint64_t salt = mix64(o.seed * 0x9e3779b97f4a7c15ULL + p + 1);
        uint32_t m = sig[p];
        for (uint64_t s : shingles) m = std::min(m, static_cast<uint32_t>(mix64(s ^ salt) >> 32));
        sig[p] = m;
    }
    return sig;
}

double estimated_jaccard(const uint32_t *a, const uint32_t *b, int64_t n) {
    int64_t equal = 0;
    for (int64_t i = 0; i < n; ++i) equal += a[i] == b[i];
    return n > 0 ? double(equal) / double(n) : 0.0;
}

int64_t choose_bands(double threshold, int64_t num_perm) {
    constexpr int kSteps = 400;
    int64_t best = 1;
    double best_error = std::numeric_limits<double>::infinity();
    for (int64_t b = 1; b <= num_perm; ++b) {
        const int64_t r = num_perm / b;
        double error = 0;
        // Midpoint rule over [0, 1]: below the threshold a candidate is a false
        // positive, above it a miss (a duplicate kept). Candidates are verified
        // on their signatures, so a false positive costs only a comparison: a
        // miss weighs nine times as much.
        for (int i = 0; i < kSteps; ++i) {
            const double s = (i + 0.5) / kSteps;
            const double p = candidate_probability(s, b, r);
            error += (s < threshold ? 0.1 * p : 0.9 * (1.0 - p)) / kSteps;
        }
        if (error < best_error) {
            best_error = error;
            best = b;
        }
    }
    return best;
}

NearDuplicateIndex::NearDuplicateIndex(int64_t num_perm, int64_t bands, double threshold)
    : num_perm_(num_perm), bands_(bands), rows_(bands >= 1 ? num_perm / bands : 0), threshold_(threshold) {
    if (bands < 1 || bands > num_perm)
        throw Error("--bands must be between 1 and --num-perm (" + std::to_string(num_perm) + "), got " +
                    std::to_string(bands));
    if (!(threshold > 0.0 && threshold <= 1.0))
        throw Error("--threshold must be in (0, 1], got " + std::to_string(threshold));
}

uint64_t NearDuplicateIndex::band_key(const uint32_t *signature, int64_t band) const {
    uint64_t h = mix64(static_cast<uint64_t>(band) + 1);
    for (int64_t i = band * rows_; i < (band + 1) * rows_; ++i) h = mix64(h ^ signature[i]);
    return h;
}

bool NearDuplicateIndex::is_duplicate_else_add(const std::vector<uint32_t> &signature) {
    if (static_cast<int64_t>(signature.size()) != num_perm_)
        throw Error("near-duplicate index: a signature of " + std::to_string(signature.size()) + " values, expected " +
                    std::to_string(num_perm_));
    std::vector<uint64_t> keys(static_cast<size_t>(bands_));
    for (int64_t b = 0; b < bands_; ++b) {
        keys[static_cast<size_t>(b)] = band_key(signature.data(), b);
        const auto range = buckets_.equal_range(keys[static_cast<size_t>(b)]);
        for (auto it = range.first; it != range.second; ++it) {
            const uint32_t *kept = signatures_.data() + static_cast<size_t>(it->second) * static_cast<size_t>(num_perm_);
            if (estimated_jaccard(signature.data(), kept, num_perm_) >= threshold_) return true;
        }
    }
    // Document ids are 32-bit to halve the index; past that the index refuses rather than wraps.
    if (kept_ >= int64_t(std::numeric_limits<uint32_t>::max()))
        throw Error("near-duplicate index: more than 4294967295 distinct documents");
    const auto id = static_cast<uint32_t>(kept_++);
    signatures_.insert(signatures_.end(), signature.begin(), signature.end());
    for (uint64_t key : keys) buckets_.emplace(key, id);
    return false;
}

} // namespace cdrmix
