// A process group over PyTorch's own distributed engine (c10d): a TCPStore
// rendezvous at the master (rank 0 serves it), then ProcessGroupGloo for the
// collectives. No sockets of our own. Every wait is bounded by the timeout, and
// every failure a user can cause (a port in use, an unreachable master, ranks
// that disagree about the world size) is one cdrmix::Error line.
//
// Threads: one thread at a time per group; collectives block until every rank
// has called them (or the timeout passes).
#pragma once

#include "dist/dist_env.hpp"

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>

namespace cdrmix {

enum class ReduceOp { Sum, Avg, Max, Min };
// "sum", "avg", "max", "min"; throws cdrmix::Error for anything else.
ReduceOp reduce_op_from(const std::string &name);

class ProcessGroup {
public:
    // Joins the group env describes (world_size 1: a group of one, no network).
    ProcessGroup(const DistEnv &env, std::chrono::milliseconds timeout);
    ~ProcessGroup();
    ProcessGroup(const ProcessGroup &) = delete;
    ProcessGroup &operator=(const ProcessGroup &) = delete;

    int rank() const { return env_.rank; }
    int world_size() const { return env_.world_size; }
    int local_rank() const { return env_.local_rank; }
    const DistEnv &env() const { return env_; }

    void barrier();
    // In place, on a contiguous CPU tensor; Avg divides the sum by world_size.
    void all_reduce(at::Tensor &t, ReduceOp op);
    void broadcast(at::Tensor &t, int src);

private:
    struct Impl;
    DistEnv env_;
    std::chrono::milliseconds timeout_;
    std::unique_ptr<Impl> impl_;
};

} // namespace cdrmix
