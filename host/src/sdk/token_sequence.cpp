#include <cdrmix/error.hpp>
#include <cdrmix/token_sequence.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace cdrmix {

namespace {

class MemoryTokens final : public TokenSequence {
public:
    explicit MemoryTokens(std::vector<uint32_t> ids) : ids_(std::move(ids)) {}
    int64_t size() const override { return static_cast<int64_t>(ids_.size()); }
    void read(int64_t start, int64_t count, int64_t *out) const override {
        std::copy(ids_.begin() + start, ids_.begin() + start + count, out);
    }

private:
    std::vector<uint32_t> ids_;
};

class SliceTokens final : public TokenSequence {
public:
    SliceTokens(std::shared_ptr<TokenSequence> base, int64_t begin, int64_t end)
        : base_(std::move(base)), begin_(begin), end_(end) {}
    int64_t size() const override { return end_ - begin_; }
    void read(int64_t start, int64_t count, int64_t *out) const override { base_->read(begin_ + start, count, out); }

private:
    std::shared_ptr<TokenSequence> base_;
    int64_t begin_, end_;
};

class ConcatTokens final : public TokenSequence {
public:
    explicit ConcatTokens(std::vector<std::shared_ptr<TokenSequence>> parts) : parts_(std::move(parts)) {
        starts_.push_back(0);
        for (const auto &p : parts_) starts_.push_back(starts_.back() + p->size());
    }
    int64_t size() const override { return starts_.back(); }
    void read(int64_t start, int64_t count, int64_t *out) const override {
        // The part holding `start`: the last part beginning at or before it.
        size_t part = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin()) - 1;
        while (count > 0) {
            const int64_t offset = start - starts_[part];
            const int64_t n = std::min(count, parts_[part]->size() - offset);
            parts_[part]->read(offset, n, out);
            start += n, out += n, count -= n;
            ++part;
        }
    }

private:
    std::vector<std::shared_ptr<TokenSequence>> parts_;
    std::vector<int64_t> starts_;
};

// Token files are little-endian and are read in place.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "map_token_file assumes a little-endian host");

class MappedTokens final : public TokenSequence {
public:
    MappedTokens(std::string path, TokenDtype dtype, int64_t vocab_size)
        : path_(std::move(path)), dtype_(dtype), vocab_(vocab_size) {
        const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw Error(path_ + ": cannot open: " + std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            ::close(fd);
            throw Error(path_ + ": cannot stat: " + std::strerror(errno));
        }
        bytes_ = static_cast<size_t>(st.st_size);
        const auto width = static_cast<size_t>(token_dtype_bytes(dtype));
        if (bytes_ == 0 || bytes_ % width != 0) {
            ::close(fd);
            throw Error(path_ + ": " + std::to_string(bytes_) + " bytes is not a whole number of " +
                        token_dtype_name(dtype) + " tokens (" + std::to_string(width) + " bytes each; " +
                        std::to_string(bytes_ / width) + " tokens and " + std::to_string(bytes_ % width) +
                        " bytes left over): the file is " + (bytes_ == 0 ? "empty" : "truncated or has another dtype"));
        }
        data_ = ::mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, fd, 0);
        ::close(fd);
        if (data_ == MAP_FAILED) throw Error(path_ + ": cannot map: " + std::strerror(errno));
        size_ = static_cast<int64_t>(bytes_ / width);
    }
    ~MappedTokens() override { ::munmap(data_, bytes_); }
    int64_t size() const override { return size_; }
    void read(int64_t start, int64_t count, int64_t *out) const override {
        if (dtype_ == TokenDtype::U16) copy(static_cast<const uint16_t *>(data_), start, count, out);
        else copy(static_cast<const uint32_t *>(data_), start, count, out);
    }

private:
    template <class T> void copy(const T *src, int64_t start, int64_t count, int64_t *out) const {
        uint32_t worst = 0;
        for (int64_t i = 0; i < count; ++i) {
            out[i] = src[start + i];
            worst = std::max<uint32_t>(worst, src[start + i]);
        }
        if (static_cast<int64_t>(worst) < vocab_) return;
        for (int64_t i = 0; i < count; ++i)
            if (out[i] >= vocab_)
                throw Error(path_ + ": token " + std::to_string(out[i]) + " at index " + std::to_string(start + i) +
                            " is outside the vocabulary of " + std::to_string(vocab_) + " (wrong dtype or vocab_size?)");
    }

    std::string path_;
    TokenDtype dtype_;
    int64_t vocab_;
    void *data_ = nullptr;
    size_t bytes_ = 0;
    int64_t size_ = 0;
};

} // namespace

std::shared_ptr<TokenSequence> tokens_in_memory(std::vector<uint32_t> ids) {
    return std::make_shared<MemoryTokens>(std::move(ids));
}

std::shared_ptr<TokenSequence> slice_tokens(std::shared_ptr<TokenSequence> tokens, int64_t begin, int64_t end) {
    return std::make_shared<SliceTokens>(std::move(tokens), begin, end);
}

std::shared_ptr<TokenSequence> concat_tokens(std::vector<std::shared_ptr<TokenSequence>> parts) {
    if (parts.size() == 1) return parts[0];
    return std::make_shared<ConcatTokens>(std::move(parts));
}

TokenDtype parse_token_dtype(const std::string &name, const std::string &where) {
    if (name == "uint16") return TokenDtype::U16;
    if (name == "uint32") return TokenDtype::U32;
    throw Error(where + ": key 'dtype' must be \"uint16\" or \"uint32\", got \"" + name + "\"");
}

const char *token_dtype_name(TokenDtype dtype) { return dtype == TokenDtype::U16 ? "uint16" : "uint32"; }
int64_t token_dtype_bytes(TokenDtype dtype) { return dtype == TokenDtype::U16 ? 2 : 4; }

std::shared_ptr<TokenSequence> map_token_file(const std::string &path, TokenDtype dtype, int64_t vocab_size) {
    return std::make_shared<MappedTokens>(path, dtype, vocab_size);
}

TokenFileWriter::TokenFileWriter(std::string path, TokenDtype dtype) : out_(std::move(path)), dtype_(dtype) {}

void TokenFileWriter::write(const std::vector<int64_t> &ids) {
    const int64_t limit = dtype_ == TokenDtype::U16 ? 65536 : 4294967296LL;
    const auto width = static_cast<size_t>(token_dtype_bytes(dtype_));
    buffer_.resize(ids.size() * width);
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= limit)
            throw Error(out_.path() + ": token " + std::to_string(ids[i]) + " does not fit " + token_dtype_name(dtype_));
        // Little-endian on disk whatever the host byte order.
        for (size_t b = 0; b < width; ++b) buffer_[i * width + b] = static_cast<char>((ids[i] >> (8 * b)) & 0xff);
    }
    out_.write(buffer_.data(), buffer_.size());
    count_ += static_cast<int64_t>(ids.size());
}

} // namespace cdrmix
