// Ranks as threads of this process, each with its own process group over
// loopback: the same TCPStore + Gloo path as separate processes, for tests
// and benchmarks that need a small group without starting programs.
#pragma once

#include "dist/process_group.hpp"

#include <functional>

namespace cdrmix {

// A loopback port nothing listens on now (the kernel's pick).
int free_loopback_port();

// Runs body(group) on `world` threads, rank r on thread r, all joined at
// `port` (0: a free one); waits for all and rethrows the first failure.
void run_thread_ranks(int world, int port, std::chrono::milliseconds timeout,
                      const std::function<void(ProcessGroup &)> &body);

} // namespace cdrmix
