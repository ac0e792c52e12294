#include "cli/data/corpus_reader.hpp"

#include <cdrmix/data_paths.hpp>

#include <algorithm>
#include <filesystem>

namespace cdrmix {

namespace {

constexpr int64_t kTokenChunk = int64_t(1) << 20;

} // namespace

InputKind input_kind(const std::string &path) {
    const std::string ext = std::filesystem::path(path).extension().string();
    if (ext == ".jsonl") return InputKind::Jsonl;
    if (ext == ".bin") return InputKind::Tokens;
    return InputKind::Text;
}

std::vector<std::string> corpus_files(const std::vector<std::string> &inputs) {
    return expand_paths(inputs, "input", "cdrmix data");
}

CorpusReader::CorpusReader(std::vector<std::string> files, CorpusOptions options)
    : files_(std::move(files)), options_(std::move(options)) {}

bool CorpusReader::next(CorpusPiece &piece) {
    for (;;) {
        if (!text_ && !jsonl_ && !tokens_ && !open_next_file()) return false;
        piece.text.clear();
        piece.tokens.clear();
        piece.line.clear();
        piece.record = true;
        bool got = false;
        switch (kind_) {
        case InputKind::Text: got = next_text(piece); break;
        case InputKind::Jsonl: got = next_record(piece); break;
        case InputKind::Tokens: got = next_token_chunk(piece); break;
        }
        if (got) return true;
    }
}

bool CorpusReader::open_next_file() {
    if (next_file_ == files_.size()) return false;
    const std::string &f = files_[next_file_++];
    file_ = f;
    kind_ = input_kind(f);
    switch (kind_) {
    case InputKind::Text:
        text_ = std::make_unique<std::ifstream>(f, std::ios::binary);
        if (!*text_) throw Error(f + ": cannot read");
        break;
    case InputKind::Jsonl: jsonl_ = std::make_unique<JsonlLines>(f); break;
    case InputKind::Tokens:
        if (!options_.tokens) throw Error(f + ": a token file has no text; give text or JSONL files");
        if (!options_.token_dtype) throw Error(f + ": already a token file; give text or JSONL files");
        tokens_ = map_token_file(f, *options_.token_dtype, int64_t(1) << 32);
        token_at_ = 0;
        break;
    }
    return true;
}

// False at the end of the file (the piece then holds nothing).
bool CorpusReader::next_text(CorpusPiece &piece) {
    std::string line;
    while (std::getline(*text_, line)) {
        if (!text_->eof()) line += '\n';
        piece.text += line;
        if (piece.text.size() >= options_.text_piece_bytes) break;
    }
    if (piece.text.empty()) {
        text_.reset();
        return false;
    }
    if (options_.tokens) piece.tokens = options_.tokenizer->encode(piece.text);
    return true;
}

// One JSONL record; blank and (when skipping) malformed lines are counted and passed over.
bool CorpusReader::next_record(CorpusPiece &piece) {
    std::string line;
    while (jsonl_->next(line)) {
        try {
            const bool got = options_.tokens ? record_tokens(line, *options_.tokenizer, options_.format,
                                                                jsonl_->path(), jsonl_->line(), piece.tokens)
                                                : record_text(line, options_.format, jsonl_->path(), jsonl_->line(),
                                                              piece.text);
            if (got) {
                piece.line = std::move(line);
                return true;
            }
            ++blank_;
        } catch (const Error &e) {
            if (!options_.skip_malformed) throw;
            ++malformed_;
            if (options_.on_skipped) options_.on_skipped(e);
        }
    }
    jsonl_.reset();
    return false;
}

bool CorpusReader::next_token_chunk(CorpusPiece &piece) {
    const int64_t n = std::min(kTokenChunk, tokens_->size() - token_at_);
    if (n <= 0) {
        tokens_.reset();
        return false;
    }
    piece.tokens.resize(static_cast<size_t>(n));
    tokens_->read(token_at_, n, piece.tokens.data());
    token_at_ += n;
    piece.record = false;
    return true;
}

std::shared_ptr<Tokenizer> corpus_tokenizer(const std::string &spec, const std::vector<std::string> &files,
                                            const CorpusOptions &options) {
    CorpusOptions text = options;
    text.tokens = false;
    text.text_piece_bytes = 0;
    text.on_skipped = nullptr; // the command reports skipped lines on its own walk
    return tokenizer_from_spec(
        spec,
        [&](const auto &sink) {
            CorpusReader reader(files, text);
            for (CorpusPiece piece; reader.next(piece);) sink(piece.text);
        },
        "--tokenizer");
}

} // namespace cdrmix
