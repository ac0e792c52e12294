// JSONL records: reading a file line by line from any byte offset, and turning
// one record into tokens. A record holds text (`text`, tokenised) or token ids
// (`tokens` or `input_ids`; an `attention_mask` beside `input_ids` drops the
// padding it marks as 0).
//
// Threads: a JsonlLines belongs to one thread at a time; the free functions may
// be called from any thread. Errors: cdrmix::Error naming the file and line.
#pragma once

#include <cdrmix/config.hpp>
#include <cdrmix/schema.hpp>
#include <cdrmix/tokenizer.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace cdrmix {

class JsonlLines {
public:
    // Starts at byte `offset`, which is the beginning of line number `line` + 1.
    explicit JsonlLines(const std::string &path, int64_t offset = 0, int64_t line = 0);
    ~JsonlLines();
    JsonlLines(const JsonlLines &) = delete;
    JsonlLines &operator=(const JsonlLines &) = delete;
    // The next line without its newline; false at the end of the file.
    bool next(std::string &text);
    int64_t offset() const { return offset_; } // where the next line starts
    int64_t line() const { return line_; }     // 1-based number of the last line returned
    const std::string &path() const { return path_; }

private:
    std::string path_;
    std::FILE *file_ = nullptr;
    char *buffer_ = nullptr;
    size_t capacity_ = 0;
    int64_t offset_ = 0, line_ = 0;
};

struct RecordFormat {
    std::string field;      // "" picks text, then tokens, then input_ids
    std::string separator;  // appended to text before tokenising ("\n" by default)
    int64_t eos_id = -1;    // appended after every record when >= 0
    bool skip_malformed = false; // on_error "skip": the reader warns and skips records that throw
};

// The keys of a record format (field, separator, eos_id, on_error), declared
// once for every JSONL reader: a data source's schema includes them.
Schema record_format_keys();
// Reads record_format_keys() from a config its schema resolved (defaults filled).
RecordFormat read_record_format(const Config &cfg);

// Appends the record's tokens to `out`; false (nothing appended) for a blank
// line. A malformed record throws cdrmix::Error "<file>:<line>: <what is wrong>".
bool record_tokens(const std::string &line, const Tokenizer &tokenizer, const RecordFormat &format,
                   const std::string &file, int64_t line_number, std::vector<int64_t> &out);

// The record's text, for building a vocabulary; false for a blank line or a
// record of token ids. Malformed records throw as record_tokens does.
bool record_text(const std::string &line, const RecordFormat &format, const std::string &file, int64_t line_number,
                 std::string &text);

} // namespace cdrmix
