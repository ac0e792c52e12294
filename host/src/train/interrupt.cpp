#include "train/interrupt.hpp"

#include <unistd.h>

#include <csignal>

namespace cdrmix {

namespace {

// Only lock-free atomics and _exit are touched in the handler (async-signal-safe).
std::atomic<RunControl *> g_control{nullptr};
struct sigaction g_previous;

void on_sigint(int) {
    RunControl *c = g_control.load();
    if (!c || c->interrupted.exchange(true)) _exit(kInterruptedExitCode);
    c->stop.store(true);
    static const char msg[] = "\ncdrmix: stopping after this step (Ctrl-C again to quit at once)\n";
    const ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

} // namespace

InterruptHandler::InterruptHandler(RunControl &control) {
    g_control.store(&control);
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &g_previous);
}

InterruptHandler::~InterruptHandler() {
    sigaction(SIGINT, &g_previous, nullptr);
    g_control.store(nullptr);
}

} // namespace cdrmix
