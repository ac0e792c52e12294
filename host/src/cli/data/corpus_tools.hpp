// What `cdrmix data dedup` and `cdrmix data filter` do, apart from their
// command lines: each streams the documents of its inputs (document_options:
// JSONL records, whole text files) and writes the kept ones, in input order,
// to one JSONL file (document_line), through a temporary file renamed into place.
#pragma once

#include "cli/data/corpus_reader.hpp"
#include "cli/data/near_dup.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cdrmix {

struct DedupOptions {
    MinHashOptions minhash;
    double threshold = 0.8; // estimated Jaccard at or above which a document is a near-duplicate
    int64_t bands = 0;      // 0: choose_bands(threshold, num_perm)
};

struct DedupCounts {
    int64_t read = 0, removed = 0, kept = 0;
    int64_t malformed = 0;       // JSONL lines skipped (--on-error skip)
    int64_t bands = 0, rows = 0; // the LSH banding used
};

DedupCounts dedup_corpus(const std::vector<std::string> &files, const CorpusOptions &options,
                         const DedupOptions &dedup, const std::string &output);

// Character statistics of one text, over Unicode code points (a byte that is
// not valid UTF-8 counts as one symbol). Letters are ASCII letters and every
// code point above U+007F outside the punctuation, symbol, whitespace and
// private-use blocks, so no script is favoured; digits are ASCII digits.
struct DocumentStats {
    int64_t chars = 0, letters = 0, digits = 0, whitespace = 0, symbols = 0;
    int64_t lines = 0, repeated_lines = 0; // non-blank lines, and those equal to an earlier one (trimmed)
    int64_t longest_run = 0;               // most consecutive copies of one non-whitespace character
    double symbol_ratio() const { return chars ? double(symbols) / double(chars) : 0.0; }
    double repeated_line_ratio() const { return lines ? double(repeated_lines) / double(lines) : 0.0; }
};
DocumentStats document_stats(const std::string &text);

// A rule is off at its default.
struct FilterRules {
    int64_t min_chars = 0, max_chars = 0; // characters (code points); max 0: no maximum
    double max_symbol_ratio = 1.0;
    double max_repeat_line_ratio = 1.0;
    int64_t max_char_run = 0; // 0: no maximum
    double max_ppl = 0;       // 0: no perplexity rule
};
// Throws cdrmix::Error naming the flag for a rule out of range.
void check_filter_rules(const FilterRules &rules);

// Each removed document is counted once, under the first rule it breaks in
// this order; perplexity, the costly one, is computed only for documents the
// others kept.
enum class FilterReason { Kept, TooShort, TooLong, Symbols, RepeatedLines, CharRun, Perplexity };
inline constexpr int kFilterReasons = 7;
const char *filter_reason_name(FilterReason r);

// A document's perplexity under a model, or NaN when it has too few tokens to score (it is then kept).
using PerplexityFn = std::function<double(const std::string &text)>;

FilterReason filter_reason(const std::string &text, const FilterRules &rules, const PerplexityFn &perplexity);

struct FilterCounts {
    int64_t read = 0, kept = 0;
    int64_t removed[kFilterReasons] = {}; // by FilterReason (index 0 unused)
    int64_t unscored = 0;                 // kept because too short for the perplexity rule
    int64_t malformed = 0;                // JSONL lines skipped (--on-error skip)
};

// perplexity may be empty when rules.max_ppl is 0.
FilterCounts filter_corpus(const std::vector<std::string> &files, const CorpusOptions &options,
                           const FilterRules &rules, const PerplexityFn &perplexity, const std::string &output);

} // namespace cdrmix
