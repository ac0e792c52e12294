#include "cli/child_process.hpp"

#include <cdrmix/error.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cdrmix {

namespace {

// The children's process ids, for the signal handler (async-signal-safe access only).
constexpr int kMaxChildren = 4096;
volatile pid_t g_children[kMaxChildren];
volatile int g_count = 0;
volatile std::sig_atomic_t g_interrupted = 0;

void forward_signal(int sig) {
    g_interrupted = 1;
    signal_children(sig);
}

} // namespace

std::string this_program() {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) throw Error("cannot find this program's path (/proc/self/exe)");
    exe[n] = '\0';
    return exe;
}

pid_t start_child(const ChildSpec &spec) {
    // Everything the child needs is prepared before fork: after it, only exec-safe calls.
    std::vector<std::string> owned = spec.args;
    std::vector<char *> argv;
    for (auto &a : owned) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out_fd = -1;
    if (!spec.output.empty()) {
        out_fd = ::open(spec.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out_fd < 0) throw Error(spec.output + ": cannot create: " + std::strerror(errno));
    }
    // The slot is taken before fork, so a signal arriving meanwhile finds the child once it exists.
    int slot = -1;
    for (int i = 0; i < g_count; ++i)
        if (g_children[i] <= 0) slot = i;
    if (slot < 0) {
        if (g_count >= kMaxChildren) throw Error("too many child processes at once");
        slot = g_count;
        g_children[slot] = 0;
        g_count = g_count + 1;
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int err = errno;
        if (out_fd >= 0) ::close(out_fd);
        throw Error(std::string("cannot start a process: ") + std::strerror(err));
    }
    if (pid == 0) {
        if (spec.own_process_group) ::setpgid(0, 0);
        for (const auto &[key, value] : spec.env) ::setenv(key.c_str(), value.c_str(), 1);
        if (out_fd >= 0) {
            ::dup2(out_fd, STDOUT_FILENO);
            ::dup2(out_fd, STDERR_FILENO);
        }
        if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
            std::fprintf(stderr, "cdrmix: cannot enter the folder %s: %s\n", spec.cwd.c_str(), std::strerror(errno));
            ::_exit(127);
        }
        ::execv(argv[0], argv.data());
        std::fprintf(stderr, "cdrmix: cannot run %s: %s\n", argv[0], std::strerror(errno));
        ::_exit(127);
    }
    if (out_fd >= 0) ::close(out_fd);
    g_children[slot] = pid;
    return pid;
}

void forget_child(pid_t pid) {
    for (int i = 0; i < g_count; ++i)
        if (g_children[i] == pid) g_children[i] = -1;
}

int wait_for_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) throw Error(std::string("waiting for a child process: ") + std::strerror(errno));
    forget_child(pid);
    return status;
}

int poll_child(pid_t pid) {
    int status = 0;
    pid_t done;
    while ((done = ::waitpid(pid, &status, WNOHANG)) < 0)
        if (errno != EINTR) throw Error(std::string("waiting for a child process: ") + std::strerror(errno));
    if (done == 0) return -1;
    forget_child(pid);
    return status;
}

void forward_signals_to_children() {
    struct sigaction forward{};
    forward.sa_handler = forward_signal;
    sigemptyset(&forward.sa_mask);
    sigaction(SIGINT, &forward, nullptr);
    sigaction(SIGTERM, &forward, nullptr);
}

void signal_children(int sig) {
    for (int i = 0; i < g_count; ++i)
        if (g_children[i] > 0) ::kill(g_children[i], sig);
}

bool interrupted() { return g_interrupted != 0; }

std::string status_text(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

int exit_code_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

} // namespace cdrmix
