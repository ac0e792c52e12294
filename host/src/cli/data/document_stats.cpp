// Character statistics of a document and the filter rules over them (`cdrmix data filter`).
#include "cli/data/corpus_tools.hpp"

#include <cdrmix/error.hpp>

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace cdrmix {

namespace {

// One code point from UTF-8 at p (n bytes left); -1 and 1 byte for an invalid sequence.
int32_t decode_utf8(const unsigned char *p, size_t n, size_t &len) {
    len = 1;
    if (p[0] < 0x80) return p[0];
    int extra;
    int32_t cp;
    if ((p[0] & 0xe0) == 0xc0) extra = 1, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0) extra = 2, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0) extra = 3, cp = p[0] & 0x07;
    else return -1;
    if (n < size_t(extra) + 1) return -1;
    for (int i = 1; i <= extra; ++i) {
        if ((p[i] & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const int32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1; // overlong, surrogate
    len = size_t(extra) + 1;
    return cp;
}

bool is_space(int32_t c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Punctuation and symbol blocks outside the ASCII range; the rest of Unicode
// above U+007F is counted as letters (scripts, ideographs, combining marks).
bool is_non_ascii_symbol(int32_t c) {
    return (c >= 0x80 && c <= 0xbf) || c == 0xd7 || c == 0xf7 ||        // C1 controls, Latin-1 punctuation, x and ÷
           (c >= 0x2000 && c <= 0x2bff) ||                              // general punctuation .. misc symbols and arrows
           (c >= 0x2e00 && c <= 0x2e7f) || (c >= 0x3000 && c <= 0x303f) || // supplemental and CJK punctuation
           (c >= 0xe000 && c <= 0xf8ff) || (c >= 0xfe10 && c <= 0xfe6f) || // private use, vertical/small forms
           (c >= 0xff01 && c <= 0xff0f) || c == 0xfffd ||                // full-width punctuation, replacement
           (c >= 0x1f000 && c <= 0x1faff) || c >= 0xf0000;              // emoji and pictographs, private use planes
}

// Trimmed line -> 64-bit FNV-1a: repeated lines are found without keeping their text.
uint64_t line_hash(const std::string &text, size_t begin, size_t end) {
    while (begin < end && (text[begin] == ' ' || text[begin] == '\t' || text[begin] == '\r')) ++begin;
    while (end > begin && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r')) --end;
    if (begin == end) return 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = begin; i < end; ++i) h = (h ^ static_cast<unsigned char>(text[i])) * 0x100000001b3ULL;
    return h | 1; // never 0, which marks a blank line
}

void count_lines(const std::string &text, DocumentStats &s) {
    std::unordered_set<uint64_t> seen;
    for (size_t begin = 0; begin <= text.size();) {
        size_t end = text.find('\n', begin);
        if (end == std::string::npos) end = text.size();
        const uint64_t h = line_hash(text, begin, end);
        if (h != 0) {
            ++s.lines;
            if (!seen.insert(h).second) ++s.repeated_lines;
        }
        begin = end + 1;
    }
}

} // namespace

DocumentStats document_stats(const std::string &text) {
    DocumentStats s;
    const auto *p = reinterpret_cast<const unsigned char *>(text.data());
    int32_t previous = -2;
    int64_t run = 0;
    for (size_t i = 0, len = 0; i < text.size(); i += len) {
        const int32_t c = decode_utf8(p + i, text.size() - i, len);
        ++s.chars;
        const bool space = c >= 0 && is_space(c);
        if (space) ++s.whitespace;
        else if (c >= '0' && c <= '9') ++s.digits;
        else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c > 0x7f && !is_non_ascii_symbol(c))) ++s.letters;
        else ++s.symbols; // ASCII punctuation and controls, symbol blocks, invalid bytes
        // Invalid bytes (-1) never extend a run: they are not one repeated character.
        run = !space && c >= 0 && c == previous ? run + 1 : (space || c < 0 ? 0 : 1);
        previous = c;
        s.longest_run = std::max(s.longest_run, run);
    }
    count_lines(text, s);
    return s;
}

void check_filter_rules(const FilterRules &r) {
    if (r.min_chars < 0) throw Error("--min-chars must be >= 0, got " + std::to_string(r.min_chars));
    if (r.max_chars < 0 || (r.max_chars > 0 && r.max_chars < r.min_chars))
        throw Error("--max-chars must be 0 (none) or at least --min-chars, got " + std::to_string(r.max_chars));
    if (!(r.max_symbol_ratio >= 0 && r.max_symbol_ratio <= 1))
        throw Error("--max-symbol-ratio must be in [0, 1], got " + std::to_string(r.max_symbol_ratio));
    if (!(r.max_repeat_line_ratio >= 0 && r.max_repeat_line_ratio <= 1))
        throw Error("--max-repeat-line-ratio must be in [0, 1], got " + std::to_string(r.max_repeat_line_ratio));
    if (r.max_char_run < 0) throw Error("--max-char-run must be >= 0 (0: none), got " + std::to_string(r.max_char_run));
    if (!(r.max_ppl >= 0) || std::isinf(r.max_ppl))
        throw Error("--max-ppl must be a positive number (0: none), got " + std::to_string(r.max_ppl));
}

const char *filter_reason_name(FilterReason r) {
    switch (r) {
    case FilterReason::Kept: return "kept";
    case FilterReason::TooShort: return "too short (--min-chars)";
    case FilterReason::TooLong: return "too long (--max-chars)";
    case FilterReason::Symbols: return "symbols (--max-symbol-ratio)";
    case FilterReason::RepeatedLines: return "repeated lines (--max-repeat-line-ratio)";
    case FilterReason::CharRun: return "character run (--max-char-run)";
    case FilterReason::Perplexity: return "perplexity (--max-ppl)";
    }
    return "?";
}

FilterReason filter_reason(const std::string &text, const FilterRules &rules, const PerplexityFn &perplexity) {
    const DocumentStats s = document_stats(text);
    if (s.chars < rules.min_chars) return FilterReason::TooShort;
    if (rules.max_chars > 0 && s.chars > rules.max_chars) return FilterReason::TooLong;
    if (s.symbol_ratio() > rules.max_symbol_ratio) return FilterReason::Symbols;
    if (s.repeated_line_ratio() > rules.max_repeat_line_ratio) return FilterReason::RepeatedLines;
    if (rules.max_char_run > 0 && s.longest_run > rules.max_char_run) return FilterReason::CharRun;
    if (rules.max_ppl > 0) {
        const double ppl = perplexity(text);
        if (ppl > rules.max_ppl) return FilterReason::Perplexity; // NaN (unscored) compares false: kept
    }
    return FilterReason::Kept;
}

} // namespace cdrmix
