#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace cdrmix {

namespace {

constexpr size_t kBufferBytes = size_t(1) << 20;

// Unique per process and call, so concurrent writers of one path never share a temporary file.
std::string temporary_name(const std::string &path) {
    static std::atomic<uint64_t> counter{0};
    return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

} // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)), tmp_(temporary_name(path_)) {
    // 0666 less the umask: the permissions a plain open() of the target would give.
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0) throw Error(path_ + ": cannot write: " + std::strerror(errno));
    buffer_.reserve(kBufferBytes);
}

AtomicFileWriter::~AtomicFileWriter() {
    if (fd_ < 0) return;
    ::close(fd_);
    ::unlink(tmp_.c_str());
}

void AtomicFileWriter::write(const char *data, size_t size) {
    if (buffer_.size() + size <= kBufferBytes) {
        buffer_.append(data, size);
        return;
    }
    flush_buffer();
    if (size < kBufferBytes) buffer_.append(data, size);
    else write_all(data, size); // a large piece goes straight to the file, not through a copy
}

void AtomicFileWriter::flush_buffer() {
    write_all(buffer_.data(), buffer_.size());
    buffer_.clear();
}

void AtomicFileWriter::write_all(const char *data, size_t size) {
    size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd_, data + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        // A write that makes no progress is a full disk reported late.
        if (n <= 0) fail(n == 0 ? ENOSPC : errno);
        done += static_cast<size_t>(n);
    }
}

void AtomicFileWriter::commit() {
    flush_buffer();
    if (::fsync(fd_) != 0) fail(errno);
    // close() reports deferred write errors on some file systems (NFS).
    const int closed = ::close(fd_);
    fd_ = -1;
    if (closed != 0 || std::rename(tmp_.c_str(), path_.c_str()) != 0) fail(errno);
}

void AtomicFileWriter::fail(int err) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_.c_str());
    throw Error(path_ + ": cannot write: " + std::strerror(err));
}

void write_file_atomic(const std::string &path, const std::string &contents) {
    AtomicFileWriter out(path);
    out.write(contents);
    out.commit();
}

void write_json_atomic(const std::string &path, const Json &j) {
    write_file_atomic(path, j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

} // namespace cdrmix
