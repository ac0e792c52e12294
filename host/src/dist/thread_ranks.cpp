#include "dist/thread_ranks.hpp"

#include <cdrmix/error.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <exception>
#include <thread>
#include <vector>

namespace cdrmix {

int free_loopback_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw Error("cannot open a socket to find a free loopback port");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool ok = bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
                    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0;
    close(fd);
    if (!ok) throw Error("cannot find a free loopback port");
    return ntohs(a.sin_port);
}

void run_thread_ranks(int world, int port, std::chrono::milliseconds timeout,
                      const std::function<void(ProcessGroup &)> &body) {
    if (port == 0) port = free_loopback_port();
    std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r)
        threads.emplace_back([&, r] {
            try {
                DistEnv env;
                env.rank = r;
                env.world_size = world;
                env.master_addr = "127.0.0.1";
                env.master_port = port;
                ProcessGroup group(env, timeout);
                body(group);
            } catch (...) {
                errors[size_t(r)] = std::current_exception();
            }
        });
    for (auto &t : threads) t.join();
    for (auto &e : errors)
        if (e) std::rethrow_exception(e);
}

} // namespace cdrmix
