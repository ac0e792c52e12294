// The inputs of `cdrmix data ...` and `cdrmix tokenizer train`, read in one
// walk: text files line by line, JSONL files record by record, token files
// (.bin) in chunks. Each command asks for text (to build or train a
// vocabulary) or for token ids (to write or count them); how each kind of file
// becomes text or ids, and what happens to blank and malformed JSONL lines,
// is decided here once.
#pragma once

#include <cdrmix/error.hpp>
#include <cdrmix/jsonl.hpp>
#include <cdrmix/token_sequence.hpp>
#include <cdrmix/tokenizer.hpp>

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cdrmix {

enum class InputKind { Text, Jsonl, Tokens };
// By extension: .jsonl, .bin (token ids), anything else text.
InputKind input_kind(const std::string &path);

// The files under the command's input patterns (folders, files, globs), sorted.
std::vector<std::string> corpus_files(const std::vector<std::string> &inputs);

struct CorpusOptions {
    RecordFormat format;         // how JSONL records read: field, separator, eos_id
    bool skip_malformed = false; // malformed JSONL lines are counted and skipped instead of fatal
    std::function<void(const Error &)> on_skipped; // told of each skipped line, when set
    // Pieces are token ids, text encoded with `tokenizer`; otherwise pieces are
    // text, and JSONL records of token ids are passed over.
    bool tokens = false;
    const Tokenizer *tokenizer = nullptr; // needed for tokens from text and JSONL files
    // Text files: lines joined into pieces of about this many bytes (0: one line
    // per piece). Sentencepiece's encoder is several times slower on very long
    // inputs, and per-line calls cost more than they need to.
    size_t text_piece_bytes = 0;
    // Token files are read as this dtype; unset, a token file is refused.
    std::optional<TokenDtype> token_dtype;
};

struct CorpusPiece {
    std::string text;            // text pieces: a text file's line(s), newline kept, or a JSONL record's text
    std::vector<int64_t> tokens; // token pieces
    bool record = true;          // false for a chunk of a token file, which has no records
    std::string line;            // a JSONL record's line as read (empty for other pieces)
};

class CorpusReader {
public:
    CorpusReader(std::vector<std::string> files, CorpusOptions options);
    // The next piece, in file order; false when the inputs are exhausted.
    // Throws cdrmix::Error "<file>:<line>: ..." for a malformed JSONL line
    // unless skip_malformed, and naming the file for a token file it cannot take.
    bool next(CorpusPiece &piece);
    int64_t blank() const { return blank_; }         // blank JSONL lines passed over
    int64_t malformed() const { return malformed_; } // malformed JSONL lines skipped
    const std::string &file() const { return file_; } // the file the last piece came from

private:
    bool open_next_file();
    bool next_text(CorpusPiece &piece);
    bool next_record(CorpusPiece &piece);
    bool next_token_chunk(CorpusPiece &piece);

    std::vector<std::string> files_;
    CorpusOptions options_;
    size_t next_file_ = 0;
    std::string file_;
    InputKind kind_ = InputKind::Text;
    std::unique_ptr<std::ifstream> text_;
    std::unique_ptr<JsonlLines> jsonl_;
    std::shared_ptr<TokenSequence> tokens_;
    int64_t token_at_ = 0;
    int64_t blank_ = 0, malformed_ = 0;
};

// The tokenizer --tokenizer names: "byte", "char" (its vocabulary from one
// text walk over the files) or a tokenizer file.
std::shared_ptr<Tokenizer> corpus_tokenizer(const std::string &spec, const std::vector<std::string> &files,
                                            const CorpusOptions &options);

} // namespace cdrmix
