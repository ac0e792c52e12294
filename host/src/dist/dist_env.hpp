// Which process this is in a multi-process run, read from the variables the
// usual launchers set, so a cluster's own launcher needs nothing new:
//   torchrun / cdrmix launch: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   Slurm's srun:             SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (+ MASTER_ADDR/PORT)
//   Open MPI's mpirun:        OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
// No LibTorch here: the launcher and the tests use it without a process group.
#pragma once

#include <functional>
#include <string>

namespace cdrmix {

struct DistEnv {
    int rank = 0;
    int world_size = 1;
    int local_rank = 0;
    std::string master_addr = "127.0.0.1";
    int master_port = 29500;
    std::string launcher; // "torchrun", "slurm", "mpirun", or "" for a single process
    int timeout_s = 300;  // CDRMIX_DIST_TIMEOUT: the longest any rendezvous or collective waits
};

// getenv by default; tests pass their own lookup. Throws cdrmix::Error naming
// the variable for a value that is not a number or out of range.
DistEnv dist_env_from(const std::function<const char *(const char *)> &lookup);
DistEnv dist_env_from_environment();

} // namespace cdrmix
