#include "core/zip_bounds.hpp"

#include <cdrmix/error.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <vector>

namespace cdrmix {

namespace {

constexpr uint32_t kEndOfDirectory = 0x06054b50, kZip64Locator = 0x07064b50, kZip64End = 0x06064b50,
                   kDirectoryEntry = 0x02014b50, kLocalHeader = 0x04034b50;
constexpr uint64_t kEndSize = 22, kLocatorSize = 20, kZip64EndSize = 56, kEntrySize = 46, kLocalSize = 30;
constexpr uint64_t kStored = 0, kDeflated = 8;
// Deflate cannot expand data more than 1032 times (RFC 1951's longest match per
// 2-bit code), so a deflated record's claim is bounded by the bytes it holds.
constexpr uint64_t kMaxDeflateRatio = 1032;

// Reads `n` bytes at `offset` of the archive (bounds already checked by the caller).
using ReadAt = std::function<void(uint64_t offset, unsigned char *out, uint64_t n)>;

uint64_t le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

class Archive {
public:
    Archive(uint64_t size, ReadAt read, std::string name) : size_(size), read_(std::move(read)), name_(std::move(name)) {}

    int64_t check() {
        const Directory dir = find_directory();
        std::vector<unsigned char> cd = bytes(dir.offset, dir.size, "the central directory");
        uint64_t at = 0;
        for (uint64_t i = 0; i < dir.entries; ++i) at = check_entry(cd, at, i);
        return static_cast<int64_t>(dir.entries);
    }

private:
    struct Directory {
        uint64_t entries = 0, size = 0, offset = 0;
    };

    [[noreturn]] void fail(const std::string &why) const {
        throw Error(name_ + ": not a readable torch.save/LibTorch archive: " + why);
    }

    bool within(uint64_t offset, uint64_t n) const { return offset <= size_ && n <= size_ - offset; }

    std::vector<unsigned char> bytes(uint64_t offset, uint64_t n, const char *what) const {
        if (!within(offset, n))
            fail(std::string(what) + " (" + std::to_string(n) + " bytes at " + std::to_string(offset) +
                 ") lies beyond the file's " + std::to_string(size_) + " bytes");
        std::vector<unsigned char> out(n);
        if (n) read_(offset, out.data(), n);
        return out;
    }

    // The end-of-directory record is the last thing in the file, before a comment of up to 65535 bytes.
    Directory find_directory() const {
        if (size_ < kEndSize) fail("shorter than a zip's end record");
        const uint64_t tail_size = std::min<uint64_t>(size_, kEndSize + 65535);
        const std::vector<unsigned char> tail = bytes(size_ - tail_size, tail_size, "the end record");
        for (uint64_t i = tail_size - kEndSize + 1; i-- > 0;) {
            const unsigned char *p = tail.data() + i;
            if (le(p, 4) != kEndOfDirectory || le(p + 20, 2) != tail_size - kEndSize - i) continue;
            const uint64_t end_at = size_ - tail_size + i;
            Directory d{le(p + 10, 2), le(p + 12, 4), le(p + 16, 4)};
            if (d.entries == 0xFFFF || d.size == 0xFFFFFFFF || d.offset == 0xFFFFFFFF) d = zip64_directory(end_at);
            if (d.entries > d.size / kEntrySize)
                fail(std::to_string(d.entries) + " records cannot fit a central directory of " + std::to_string(d.size) +
                     " bytes");
            return d;
        }
        fail("no zip end record");
    }

    Directory zip64_directory(uint64_t end_at) const {
        if (end_at < kLocatorSize) fail("a zip64 archive without its locator");
        const auto loc = bytes(end_at - kLocatorSize, kLocatorSize, "the zip64 locator");
        if (le(loc.data(), 4) != kZip64Locator) fail("a zip64 archive without its locator");
        const auto end = bytes(le(loc.data() + 8, 8), kZip64EndSize, "the zip64 end record");
        if (le(end.data(), 4) != kZip64End) fail("the zip64 locator points at no zip64 end record");
        return {le(end.data() + 32, 8), le(end.data() + 40, 8), le(end.data() + 48, 8)};
    }

    // Checks the entry at `at` of the central directory; returns where the next one starts.
    uint64_t check_entry(const std::vector<unsigned char> &cd, uint64_t at, uint64_t index) const {
        if (cd.size() - at < kEntrySize || le(cd.data() + at, 4) != kDirectoryEntry)
            fail("record " + std::to_string(index) + " of the central directory is malformed");
        const unsigned char *e = cd.data() + at;
        const uint64_t name_len = le(e + 28, 2), extra_len = le(e + 30, 2), comment_len = le(e + 32, 2);
        if (cd.size() - at - kEntrySize < name_len + extra_len + comment_len)
            fail("record " + std::to_string(index) + " runs past the central directory");
        const std::string record(reinterpret_cast<const char *>(e + kEntrySize), name_len);
        uint64_t compressed = le(e + 20, 4), uncompressed = le(e + 24, 4), local = le(e + 42, 4);
        read_zip64_extra(e + kEntrySize + name_len, extra_len, record, uncompressed, compressed, local);
        const std::string what = "record '" + record + "'";
        const uint64_t method = le(e + 10, 2);
        if (method != kStored && method != kDeflated)
            fail(what + " uses compression method " + std::to_string(method) + "; archives hold stored or deflated records");
        if (method == kStored && compressed != uncompressed)
            fail(what + " is stored with " + std::to_string(compressed) + " bytes but claims " +
                 std::to_string(uncompressed));
        if (method == kDeflated && uncompressed / kMaxDeflateRatio > compressed)
            fail(what + " claims " + std::to_string(uncompressed) + " bytes from " + std::to_string(compressed) +
                 " deflated ones, beyond deflate's 1032:1");
        const auto header = bytes(local, kLocalSize, ("the local header of " + what).c_str());
        if (le(header.data(), 4) != kLocalHeader) fail(what + " points at no local header");
        const uint64_t data_at = local + kLocalSize + le(header.data() + 26, 2) + le(header.data() + 28, 2);
        if (!within(data_at, compressed))
            fail(what + " claims " + std::to_string(compressed) + " bytes at offset " + std::to_string(data_at) +
                 ", beyond the file's " + std::to_string(size_) + " bytes");
        return at + kEntrySize + name_len + extra_len + comment_len;
    }

    // The zip64 extra field holds, in order, whichever of the three values is 0xFFFFFFFF in the entry.
    void read_zip64_extra(const unsigned char *extra, uint64_t len, const std::string &record, uint64_t &uncompressed,
                          uint64_t &compressed, uint64_t &local) const {
        for (uint64_t at = 0; at + 4 <= len;) {
            const uint64_t id = le(extra + at, 2), n = le(extra + at + 2, 2);
            if (n > len - at - 4) fail("record '" + record + "' has a malformed extra field");
            if (id == 1) {
                const unsigned char *p = extra + at + 4;
                uint64_t left = n;
                for (uint64_t *v : {&uncompressed, &compressed, &local}) {
                    if (*v != 0xFFFFFFFF) continue;
                    if (left < 8) fail("record '" + record + "' has a short zip64 extra field");
                    *v = le(p, 8);
                    p += 8;
                    left -= 8;
                }
            }
            at += 4 + n;
        }
    }

    uint64_t size_;
    ReadAt read_;
    std::string name_;
};

} // namespace

int64_t check_zip_bounds(const unsigned char *data, uint64_t size, const std::string &name) {
    return Archive(size, [data](uint64_t offset, unsigned char *out, uint64_t n) { std::copy_n(data + offset, n, out); },
                   name)
        .check();
}

int64_t check_zip_bounds(const std::string &path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw Error(path + ": cannot open");
    const auto end = in.tellg();
    if (end < 0) throw Error(path + ": cannot read its size");
    return Archive(static_cast<uint64_t>(end),
                   [&](uint64_t offset, unsigned char *out, uint64_t n) {
                       in.seekg(static_cast<std::streamoff>(offset));
                       in.read(reinterpret_cast<char *>(out), static_cast<std::streamsize>(n));
                       if (!in) throw Error(path + ": read failed at offset " + std::to_string(offset));
                   },
                   path)
        .check();
}

} // namespace cdrmix
