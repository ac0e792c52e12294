#include "core/plugin_probe.hpp"

#include "core/plugin_loader.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/config.hpp>
#include <cdrmix/error.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char **environ;

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

constexpr int kProtocolFd = 3; // the probe's "begin N" / "end N" lines (plugin_probe.hpp)

// What the cache remembers a file by: its size and modification time.
struct FileStamp {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
};

std::optional<FileStamp> stamp_of(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileStamp{uint64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::string canonical(const std::string &path) {
    std::error_code ec;
    const fs::path p = fs::weakly_canonical(path, ec);
    return ec ? path : p.string();
}

// The cache is the host's own file, but anything may have written there: a
// malformed one is treated as empty and rewritten.
Json read_cache(const std::string &file) {
    std::ifstream in(file);
    if (!in) return Json::object();
    const Json j = Json::parse(in, nullptr, false);
    return j.is_object() && j.contains("files") && j["files"].is_object() ? j["files"] : Json::object();
}

std::string how_it_ended(int status) {
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        const std::string name = std::string("SIG") + (abbrev ? abbrev : std::to_string(sig).c_str());
        return (sig == SIGABRT ? "aborted while loading (" : "crashed while loading (") + name + ": " +
               strsignal(sig) + ")";
    }
    return "called exit(" + std::to_string(WEXITSTATUS(status)) + ") while loading";
}

// posix_spawn's file actions, freed on every path.
struct SpawnActions {
    posix_spawn_file_actions_t a;
    SpawnActions() { posix_spawn_file_actions_init(&a); }
    ~SpawnActions() { posix_spawn_file_actions_destroy(&a); }
};

} // namespace

PluginProbe::PluginProbe(std::string probe_program, std::string cache_file, double timeout_seconds)
    : program_(std::move(probe_program)), cache_file_(std::move(cache_file)), timeout_seconds_(timeout_seconds) {}

std::optional<PluginProbe> PluginProbe::for_this_host() {
    const fs::path program = fs::path(executable_dir()) / "cdrmix-plugin-probe";
    if (!fs::is_regular_file(program)) return std::nullopt;
    fs::path dir;
    if (const char *d = std::getenv("CDRMIX_CACHE_DIR"); d && *d) dir = d;
    else if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) dir = fs::path(x) / "cdrmix";
    else if (const char *h = std::getenv("HOME"); h && *h) dir = fs::path(h) / ".cache" / "cdrmix";
    double timeout = 30;
    if (const char *t = std::getenv("CDRMIX_PLUGIN_PROBE_TIMEOUT"); t && *t) {
        char *end = nullptr;
        const double v = std::strtod(t, &end);
        if (end == t || *end != '\0' || !(v > 0) || !std::isfinite(v))
            throw Error(std::string("CDRMIX_PLUGIN_PROBE_TIMEOUT='") + t + "': expected a positive number of seconds");
        timeout = v;
    }
    return PluginProbe(program.string(), dir.empty() ? "" : (dir / "plugin-probes.json").string(), timeout);
}

size_t PluginProbe::probe_from(const std::vector<std::string> &files, size_t first,
                               std::map<std::string, ProbeVerdict> &out) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw Error(std::string("plugin probe: pipe: ") + std::strerror(errno));
    // Above the descriptor the child dup2s onto, so dup2 always clears close-on-exec.
    const int read_fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 10), write_fd = fcntl(fds[1], F_DUPFD_CLOEXEC, 10);
    close(fds[0]);
    close(fds[1]);
    if (read_fd < 0 || write_fd < 0) throw Error(std::string("plugin probe: fcntl: ") + std::strerror(errno));

    SpawnActions actions;
    posix_spawn_file_actions_adddup2(&actions.a, write_fd, kProtocolFd);
    posix_spawn_file_actions_addopen(&actions.a, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions.a, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<char *> argv = {const_cast<char *>(program_.c_str())};
    for (size_t i = first; i < files.size(); ++i) argv.push_back(const_cast<char *>(files[i].c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, program_.c_str(), &actions.a, nullptr, argv.data(), environ);
    close(write_fd);
    if (rc != 0) {
        close(read_fd);
        throw Error("plugin probe " + program_ + " cannot be started: " + std::strerror(rc));
    }

    // Read "begin N" / "end N" lines until the probe ends or a file outlasts the timeout.
    long begun = -1, ended = -1;
    bool timed_out = false;
    std::string pending;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds_);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{read_fd, POLLIN, 0};
        const int ready = poll(&p, 1, int(std::max<int64_t>(0, left.count())));
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        char buf[256];
        const ssize_t n = read(read_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        pending.append(buf, size_t(n));
        for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) {
            std::istringstream line(pending.substr(0, nl));
            std::string word;
            long index = -1;
            line >> word >> index;
            if (word == "begin") {
                begun = index;
                deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds_);
            } else if (word == "end") {
                ended = index;
            }
        }
    }
    close(read_fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }

    const long count = long(files.size() - first);
    for (long i = 0; i <= ended && i < count; ++i) out[files[first + size_t(i)]] = ProbeVerdict{};
    if (ended + 1 >= count) return files.size();
    if (begun <= ended) // it died between files: not while loading one
        throw Error("plugin probe " + program_ + " ended before loading " + files[first + size_t(ended + 1)] + " (" +
                    how_it_ended(status) + ")");
    const std::string why = timed_out ? "did not finish loading within " + std::to_string(int(timeout_seconds_)) +
                                            " s (stuck in its initialisation?)"
                                      : how_it_ended(status);
    out[files[first + size_t(begun)]] = ProbeVerdict{false, why};
    return first + size_t(begun) + 1;
}

std::map<std::string, ProbeVerdict> PluginProbe::check(const std::vector<std::string> &files) {
    warnings_.clear();
    Json cache = cache_file_.empty() ? Json::object() : read_cache(cache_file_);
    std::map<std::string, ProbeVerdict> verdicts;
    std::vector<std::string> unknown;
    for (const auto &file : files) {
        const std::optional<FileStamp> s = stamp_of(file);
        const std::string key = canonical(file);
        const Json *e = cache.contains(key) ? &cache[key] : nullptr;
        if (s && e && e->is_object() && e->value("size", uint64_t(0)) == s->size &&
            e->value("mtime_ns", int64_t(0)) == s->mtime_ns && e->contains("safe") && (*e)["safe"].is_boolean())
            verdicts[file] = ProbeVerdict{(*e)["safe"].get<bool>(), e->value("why", std::string())};
        else
            unknown.push_back(file);
    }
    if (unknown.empty()) return verdicts;
    for (size_t next = 0; next < unknown.size();) next = probe_from(unknown, next, verdicts);
    if (cache_file_.empty()) return verdicts;

    for (const auto &file : unknown)
        if (const std::optional<FileStamp> s = stamp_of(file))
            cache[canonical(file)] = {{"size", s->size}, {"mtime_ns", s->mtime_ns}, {"safe", verdicts[file].safe},
                                      {"why", verdicts[file].why}};
    for (auto it = cache.begin(); it != cache.end();) // forget files that are gone
        it = fs::exists(it.key()) ? std::next(it) : cache.erase(it);
    try {
        fs::create_directories(fs::path(cache_file_).parent_path());
        write_json_atomic(cache_file_, Json{{"files", cache}});
    } catch (const std::exception &e) {
        warnings_.push_back("plugin probe cache " + cache_file_ + " not written (plugins are probed again next time): " +
                            e.what());
    }
    return verdicts;
}

} // namespace cdrmix
