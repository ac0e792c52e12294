// Every file the project writes appears whole or not at all: the bytes go to a
// temporary file in the target's folder, which is flushed to disk and renamed
// over the target. A reader (a resumed run, a watching dashboard, another
// process) never sees half a file, and a full disk is an error, never a short
// file that loads later as garbage.
//
// Threads: any thread. Two writers of one path each use their own temporary
// file; the last rename wins and neither leaves a partial file.
//
// Errors: cdrmix::Error, one line "PATH: cannot write: <reason>" naming the
// target and the system's reason (ENOSPC, EACCES, a missing folder, ...). On
// any failure the temporary file is removed and the target is left as it was.
#pragma once

#include <cdrmix/config.hpp>

#include <cstddef>
#include <string>

namespace cdrmix {

void write_file_atomic(const std::string &path, const std::string &contents);
// j.dump(2) and a newline; invalid UTF-8 inside strings becomes U+FFFD.
void write_json_atomic(const std::string &path, const Json &j);

// The same for a file written piece by piece (token files, JSONL shards): the
// target appears only when commit() succeeds. Destroyed without commit(), the
// writer removes its temporary file, so a failed command leaves nothing behind.
class AtomicFileWriter {
public:
    explicit AtomicFileWriter(std::string path);
    ~AtomicFileWriter();
    AtomicFileWriter(const AtomicFileWriter &) = delete;
    AtomicFileWriter &operator=(const AtomicFileWriter &) = delete;

    void write(const char *data, size_t size);
    void write(const std::string &bytes) { write(bytes.data(), bytes.size()); }
    // Flushes, syncs and renames into place; call it once, after the last write().
    void commit();
    const std::string &path() const { return path_; }

private:
    void flush_buffer();
    void write_all(const char *data, size_t size);
    [[noreturn]] void fail(int err); // removes the temporary file and throws

    std::string path_, tmp_;
    int fd_ = -1;
    std::string buffer_; // small writes gathered into large system calls
};

} // namespace cdrmix
