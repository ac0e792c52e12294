// A random-access sequence of token ids (in memory, a memory-mapped file, a
// slice or a concatenation), and the writer for token files. Token files are
// raw arrays of little-endian uint16 (nanoGPT's train.bin / val.bin) or uint32
// (Oxidizr's .bin) ids with no header.
#pragma once

#include <cdrmix/atomic_file.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

class TokenSequence {
public:
    virtual ~TokenSequence() = default;
    virtual int64_t size() const = 0;
    // Copies tokens [start, start + count) to out; the range must lie inside.
    virtual void read(int64_t start, int64_t count, int64_t *out) const = 0;
};

std::shared_ptr<TokenSequence> tokens_in_memory(std::vector<uint32_t> ids);
std::shared_ptr<TokenSequence> slice_tokens(std::shared_ptr<TokenSequence> tokens, int64_t begin, int64_t end);
std::shared_ptr<TokenSequence> concat_tokens(std::vector<std::shared_ptr<TokenSequence>> parts);

enum class TokenDtype { U16, U32 };
// "uint16" or "uint32"; anything else throws naming `where`.
TokenDtype parse_token_dtype(const std::string &name, const std::string &where);
const char *token_dtype_name(TokenDtype dtype);
int64_t token_dtype_bytes(TokenDtype dtype);

// Maps a token file read-only (pages load on demand, so memory stays flat).
// Refuses an empty file or one whose size is not a whole number of tokens,
// naming the file and both sizes. Reading an id >= vocab_size throws, naming
// the file and the token's index.
std::shared_ptr<TokenSequence> map_token_file(const std::string &path, TokenDtype dtype, int64_t vocab_size);

// Appends tokens to a temporary file beside path; commit() renames it to path
// (cdrmix/atomic_file.hpp). Destroyed without commit(), it removes the
// temporary file. Write errors (a full disk) throw naming path.
class TokenFileWriter {
public:
    TokenFileWriter(std::string path, TokenDtype dtype);
    // Throws if an id does not fit the dtype.
    void write(const std::vector<int64_t> &ids);
    void commit() { out_.commit(); }
    int64_t count() const { return count_; }

private:
    AtomicFileWriter out_;
    TokenDtype dtype_;
    int64_t count_ = 0;
    std::vector<char> buffer_;
};

} // namespace cdrmix
