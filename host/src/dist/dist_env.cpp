#include "dist/dist_env.hpp"

#include <cdrmix/error.hpp>

#include <cstdlib>
#include <string>

namespace cdrmix {

namespace {

int int_var(const std::function<const char *(const char *)> &lookup, const char *name, int fallback, int lo, int hi) {
    const char *v = lookup(name);
    if (!v || !*v) return fallback;
    char *end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < lo || n > hi)
        throw Error(std::string("environment variable ") + name + "='" + v + "' is not a whole number in " +
                    std::to_string(lo) + ".." + std::to_string(hi));
    return static_cast<int>(n);
}

} // namespace

DistEnv dist_env_from(const std::function<const char *(const char *)> &lookup) {
    DistEnv e;
    constexpr int kMax = 1 << 20;
    struct Convention {
        const char *launcher, *rank, *size, *local;
    };
    // torchrun's names first: cdrmix launch sets them, and they win over a
    // scheduler's when a job script sets both.
    const Convention conventions[] = {{"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
                                      {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
                                      {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                       "OMPI_COMM_WORLD_LOCAL_RANK"}};
    for (const auto &c : conventions) {
        const char *size = lookup(c.size);
        if (!size || !*size) continue;
        e.launcher = c.launcher;
        e.world_size = int_var(lookup, c.size, 1, 1, kMax);
        e.rank = int_var(lookup, c.rank, 0, 0, e.world_size - 1);
        e.local_rank = int_var(lookup, c.local, 0, 0, kMax);
        break;
    }
    if (const char *addr = lookup("MASTER_ADDR"); addr && *addr) e.master_addr = addr;
    e.master_port = int_var(lookup, "MASTER_PORT", e.master_port, 1, 65535);
    e.timeout_s = int_var(lookup, "CDRMIX_DIST_TIMEOUT", e.timeout_s, 1, 24 * 3600);
    return e;
}

DistEnv dist_env_from_environment() {
    return dist_env_from([](const char *name) { return std::getenv(name); });
}

} // namespace cdrmix
