#include "metrics/run_dir.hpp"

#include <cdrmix/error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

namespace fs = std::filesystem;

namespace cdrmix {

RunDir::RunDir(const std::string &root, const std::string &name) {
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec) throw Error(root + ": cannot create runs folder: " + ec.message());
    const std::string base = root + "/" + name + "-" + stamp;
    for (int i = 1;; ++i) {
        std::string candidate = i == 1 ? base : base + "-" + std::to_string(i);
        if (fs::create_directory(candidate, ec)) {
            path_ = candidate;
            break;
        }
        if (ec) throw Error(candidate + ": cannot create run directory: " + ec.message());
    }
    fs::create_directory(checkpoints(), ec);
}

void write_file_atomic(const std::string &path, const std::string &contents) {
    const std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw Error(tmp + ": cannot write: " + std::strerror(errno));
    size_t done = 0;
    while (done < contents.size()) {
        ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0) {
            ::close(fd);
            throw Error(tmp + ": write failed: " + std::strerror(errno));
        }
        done += static_cast<size_t>(n);
    }
    ::fsync(fd);
    ::close(fd);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(path + ": rename failed: " + std::strerror(errno));
}

void write_json_atomic(const std::string &path, const Json &j) {
    write_file_atomic(path, j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

} // namespace cdrmix
