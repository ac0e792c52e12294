// A process group over PyTorch's own distributed engine (c10d): a TCPStore
// rendezvous at the master (rank 0 serves it), then ProcessGroupGloo for the
// collectives. No sockets of our own. Every wait is bounded by the timeout, and
// every failure a user can cause (a port in use, an unreachable master, ranks
// that disagree about the world size) is one cdrmix::Error line.
//
// Threads: one thread at a time per group; collectives block until every rank
// has called them (or the timeout passes). Every rank must make the same
// collective calls in the same order (Gloo matches them by sequence).
//
// When a collective fails because a rank is gone (killed, crashed), the error
// names the lost ranks: the survivors check in at the rendezvous store and
// those that do not within a few seconds are named ("rank 1 is gone").
#pragma once

#include "dist/dist_env.hpp"

#include <cdrmix/error.hpp>

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

// A collective (or the store) failed: a rank is gone, or the timeout passed.
// The run cannot go on; callers add what they know (the last checkpoint).
class CollectiveError : public Error {
public:
    using Error::Error;
};

enum class ReduceOp { Sum, Avg, Max, Min };

// A collective under way (from ProcessGroup::start_all_reduce). wait() blocks
// until it is done, at most the group's timeout, and throws like the blocking calls.
class PendingCollective {
public:
    PendingCollective();
    PendingCollective(PendingCollective &&) noexcept;
    PendingCollective &operator=(PendingCollective &&) noexcept;
    ~PendingCollective();
    void wait();

private:
    friend class ProcessGroup;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};
// "sum", "avg", "max", "min"; throws cdrmix::Error for anything else.
ReduceOp reduce_op_from(const std::string &name);

class ProcessGroup {
public:
    // Joins the group env describes (world_size 1: a group of one, no network).
    ProcessGroup(const DistEnv &env, std::chrono::milliseconds timeout);
    // A group of some of this group's ranks (`ranks`, ascending, this rank among
    // them), over the same rendezvous store: its own Gloo connections, its ranks
    // numbered 0.. in the order given. Only the members call it, each with the
    // same ranks and name; it blocks until they all have.
    std::unique_ptr<ProcessGroup> subgroup(const std::vector<int> &ranks, const std::string &name);
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
    // Point to point, blocking: t (contiguous, CPU) goes to dst / is filled from src.
    void send(at::Tensor &t, int dst);
    void recv(at::Tensor &t, int src);
    // All-to-all: the first in_splits[0] rows of `in` go to rank 0, the next
    // in_splits[1] to rank 1, ...; `out` receives out_splits[r] rows from each
    // rank r, rank 0's first. Both contiguous CPU tensors of one dtype.
    void all_to_all(at::Tensor &out, at::Tensor &in, const std::vector<int64_t> &out_splits,
                    const std::vector<int64_t> &in_splits);
    // Starts a summing all-reduce of a contiguous CPU tensor in place and returns at once.
    PendingCollective start_all_reduce(at::Tensor &t);

    // Small text through the rendezvous store (run folders, checkpoint paths,
    // data positions): not for tensors. Every rank must call these in the same order.
    // Rank src's value on every rank.
    std::string share(const std::string &value, int src = 0);
    // Every rank's value, by rank.
    std::vector<std::string> all_gather(const std::string &value);

    // One line for a collective that failed: which ranks are gone, if any,
    // else the failure itself. `what` names the collective ("the gradient all-reduce").
    [[noreturn]] void fail(const std::string &what, const std::exception &e);

private:
    struct Impl;
    ProcessGroup(const DistEnv &env, std::chrono::milliseconds timeout, std::unique_ptr<Impl> impl);
    DistEnv env_;
    std::chrono::milliseconds timeout_;
    std::unique_ptr<Impl> impl_;
    int64_t store_calls_ = 0; // names the keys of share()/all_gather(), the same on every rank
    // The ranks (of the whole run, as messages name them) that do not check in
    // at the store within a few seconds after a failure.
    std::vector<int> lost_ranks();
};

} // namespace cdrmix
