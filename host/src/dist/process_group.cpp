#include "dist/process_group.hpp"

#include <cdrmix/error.hpp>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <c10/macros/Macros.h>
#ifdef C10_USE_GLOG // Debian's LibTorch logs through glog; a PyTorch wheel's does not
#include <glog/logging.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace cdrmix {

ReduceOp reduce_op_from(const std::string &name) {
    if (name == "sum") return ReduceOp::Sum;
    if (name == "avg") return ReduceOp::Avg;
    if (name == "max") return ReduceOp::Max;
    if (name == "min") return ReduceOp::Min;
    throw Error("unknown reduce op '" + name + "' (sum, avg, max or min)");
}

struct ProcessGroup::Impl {
    c10::intrusive_ptr<c10d::Store> store; // the rendezvous store, shared with subgroups
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
    c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> options;
    std::vector<int> members;           // the run's rank of each of this group's ranks
    std::string prefix = "cdrmix/";     // of this group's share()/all_gather() keys
};

namespace {

// c10d's messages carry a C++ backtrace after the first line.
std::string first_line(const std::exception &e) {
    std::string m = e.what();
    if (auto nl = m.find('\n'); nl != std::string::npos) m.resize(nl);
    return m;
}

std::string seconds(std::chrono::milliseconds t) { return std::to_string(t.count() / 1000) + " s"; }

} // namespace

ProcessGroup::ProcessGroup(const DistEnv &env, std::chrono::milliseconds timeout)
    : env_(env), timeout_(timeout), impl_(std::make_unique<Impl>()) {
    for (int r = 0; r < env_.world_size; ++r) impl_->members.push_back(r);
    if (env_.world_size == 1) return;
    // c10d logs every failed connect or bind attempt through glog; the errors
    // below say what went wrong in one line. GLOG_minloglevel set by the user wins.
#ifdef C10_USE_GLOG
    if (!std::getenv("GLOG_minloglevel")) FLAGS_minloglevel = google::GLOG_FATAL;
#endif
    const std::string master = env_.master_addr + ":" + std::to_string(env_.master_port);
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env_.master_port);
    options.isServer = env_.rank == 0;
    options.numWorkers = env_.world_size;
    options.waitWorkers = false; // counted below, so a short group is one clear error
    options.timeout = timeout_;
    try {
        impl_->store = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, options);
    } catch (const std::exception &e) {
        if (env_.rank == 0)
            throw Error("rank 0 cannot serve the rendezvous on " + master + ": " + first_line(e) +
                        " (another job on this port? set MASTER_PORT or --master HOST:PORT)");
        throw Error("rank " + std::to_string(env_.rank) + " cannot reach the rendezvous master " + master +
                    " within " + seconds(timeout_) + ": " + first_line(e));
    }
    // Every rank states the world size it was started with; all must agree.
    const std::string mine = std::to_string(env_.world_size);
    impl_->store->set("cdrmix/world_size/" + std::to_string(env_.rank), std::vector<uint8_t>(mine.begin(), mine.end()));
    impl_->store->add("cdrmix/joined", 1);
    try {
        impl_->store->wait({"cdrmix/world_size/0"}, timeout_);
        const auto zero = impl_->store->get("cdrmix/world_size/0");
        const std::string theirs(zero.begin(), zero.end());
        if (theirs != mine)
            throw Error("rank " + std::to_string(env_.rank) + " was started with world size " + mine +
                        " but rank 0 with " + theirs + ": every rank must get the same WORLD_SIZE");
        std::vector<std::string> keys;
        for (int r = 0; r < env_.world_size; ++r) keys.push_back("cdrmix/world_size/" + std::to_string(r));
        impl_->store->wait(keys, timeout_);
    } catch (const Error &) {
        throw;
    } catch (const std::exception &) {
        const int64_t seen = impl_->store->add("cdrmix/joined", 0);
        throw Error("rendezvous at " + master + " timed out after " + seconds(timeout_) + ": " + std::to_string(seen) +
                    " of " + mine + " ranks joined (a rank failed to start, or the ranks disagree about WORLD_SIZE)");
    }
    auto gloo = c10d::ProcessGroupGloo::Options::create();
    gloo->timeout = timeout_;
    // Loopback masters (one machine) bind loopback; otherwise the interface
    // GLOO_SOCKET_IFNAME names, else the one this host's name resolves to.
    const bool loopback = env_.master_addr == "localhost" || env_.master_addr.rfind("127.", 0) == 0;
    const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
    gloo->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                            : ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                                : c10d::ProcessGroupGloo::createDefaultDevice());
    try {
        impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env_.rank, env_.world_size, gloo);
    } catch (const std::exception &e) {
        throw Error("rank " + std::to_string(env_.rank) + ": cannot connect to the other ranks: " + first_line(e));
    }
    impl_->options = gloo;
}

ProcessGroup::ProcessGroup(const DistEnv &env, std::chrono::milliseconds timeout, std::unique_ptr<Impl> impl)
    : env_(env), timeout_(timeout), impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::subgroup(const std::vector<int> &ranks, const std::string &name) {
    const auto me = std::find(ranks.begin(), ranks.end(), env_.rank);
    if (me == ranks.end() || !std::is_sorted(ranks.begin(), ranks.end()) ||
        std::adjacent_find(ranks.begin(), ranks.end()) != ranks.end() || ranks.front() < 0 ||
        ranks.back() >= env_.world_size)
        throw Error("process group '" + name + "': rank " + std::to_string(env_.rank) +
                    " asked for a subgroup of ranks it is not in, or not ascending ranks of 0.." +
                    std::to_string(env_.world_size - 1));
    DistEnv env = env_;
    env.rank = int(me - ranks.begin());
    env.world_size = int(ranks.size());
    auto impl = std::make_unique<Impl>();
    impl->store = impl_->store;
    impl->options = impl_->options;
    for (int r : ranks) impl->members.push_back(impl_->members[size_t(r)]);
    impl->prefix = impl_->prefix + name + "/";
    if (ranks.size() > 1) {
        try {
            auto store = c10::make_intrusive<c10d::PrefixStore>(impl->prefix + "gloo", impl_->store);
            impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, impl->options);
        } catch (const std::exception &e) {
            fail("joining process group '" + name + "'", e);
        }
    }
    return std::unique_ptr<ProcessGroup>(new ProcessGroup(env, timeout_, std::move(impl)));
}

// The handle type Gloo's collectives return (c10d::ProcessGroup::Work in LibTorch 1.x, c10d::Work in 2.x).
using WorkPtr = decltype(std::declval<c10d::ProcessGroupGloo &>().allreduce(
    std::declval<std::vector<at::Tensor> &>(), c10d::AllreduceOptions()));

struct PendingCollective::Impl {
    ProcessGroup *group = nullptr;
    WorkPtr work;
    std::chrono::milliseconds timeout{0};
};

PendingCollective::PendingCollective() = default;
PendingCollective::PendingCollective(PendingCollective &&) noexcept = default;
PendingCollective &PendingCollective::operator=(PendingCollective &&) noexcept = default;
PendingCollective::~PendingCollective() = default;

void PendingCollective::wait() {
    if (!impl_ || !impl_->work) return;
    WorkPtr work = std::move(impl_->work);
    try {
        work->wait(impl_->timeout);
    } catch (const std::exception &e) {
        impl_->group->fail("all_reduce", e);
    }
}

std::vector<int> ProcessGroup::lost_ranks() {
    // Survivors reach here after their own collective failed; a rank that
    // does not check in within a few seconds is gone.
    const auto patience = std::min<std::chrono::milliseconds>(timeout_, std::chrono::seconds(5));
    const int self = impl_->members[size_t(env_.rank)];
    impl_->store->set("cdrmix/alive/" + std::to_string(self), std::vector<uint8_t>{1});
    const auto deadline = std::chrono::steady_clock::now() + patience;
    std::vector<int> lost;
    for (int r : impl_->members) {
        if (r == self) continue;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        try {
            impl_->store->wait({"cdrmix/alive/" + std::to_string(r)}, std::max(left, std::chrono::milliseconds(1)));
        } catch (const std::exception &) {
            lost.push_back(r);
        }
    }
    return lost;
}

void ProcessGroup::fail(const std::string &what, const std::exception &e) {
    const std::string me = "rank " + std::to_string(impl_->members[size_t(env_.rank)]);
    std::string gone;
    try {
        for (int r : lost_ranks()) gone += (gone.empty() ? "rank " : ", rank ") + std::to_string(r);
        if (!gone.empty()) gone += gone.find(',') == std::string::npos ? " is gone" : " are gone";
    } catch (const std::exception &) {
        gone = "rank 0 (the rendezvous master) is gone"; // the store it serves no longer answers
    }
    if (!gone.empty()) throw CollectiveError(me + ": " + gone + " (" + what + " failed: " + first_line(e) + ")");
    throw CollectiveError(me + ": " + what + " failed: " + first_line(e));
}

void ProcessGroup::barrier() {
    if (!impl_->group) return;
    try {
        impl_->group->barrier()->wait(timeout_);
    } catch (const std::exception &e) {
        fail("barrier", e);
    }
}

void ProcessGroup::all_reduce(at::Tensor &t, ReduceOp op) {
    if (!impl_->group) return;
    c10d::AllreduceOptions o;
    o.reduceOp = op == ReduceOp::Max   ? c10d::ReduceOp::MAX
                 : op == ReduceOp::Min ? c10d::ReduceOp::MIN
                                       : c10d::ReduceOp::SUM;
    o.timeout = timeout_;
    std::vector<at::Tensor> tensors{t};
    try {
        impl_->group->allreduce(tensors, o)->wait(timeout_);
    } catch (const std::exception &e) {
        fail("all_reduce", e);
    }
    if (op == ReduceOp::Avg) t.div_(env_.world_size);
}

PendingCollective ProcessGroup::start_all_reduce(at::Tensor &t) {
    PendingCollective p;
    if (!impl_->group) return p;
    c10d::AllreduceOptions o;
    o.timeout = timeout_;
    std::vector<at::Tensor> tensors{t};
    p.impl_ = std::make_unique<PendingCollective::Impl>();
    p.impl_->group = this;
    p.impl_->timeout = timeout_;
    try {
        p.impl_->work = impl_->group->allreduce(tensors, o);
    } catch (const std::exception &e) {
        fail("all_reduce", e);
    }
    return p;
}

void ProcessGroup::broadcast(at::Tensor &t, int src) {
    if (src < 0 || src >= env_.world_size)
        throw Error("broadcast: source rank " + std::to_string(src) + " is not in 0.." +
                    std::to_string(env_.world_size - 1));
    if (!impl_->group) return;
    c10d::BroadcastOptions o;
    o.rootRank = src;
    o.timeout = timeout_;
    std::vector<at::Tensor> tensors{t};
    try {
        impl_->group->broadcast(tensors, o)->wait(timeout_);
    } catch (const std::exception &e) {
        fail("broadcast", e);
    }
}

void ProcessGroup::all_to_all(at::Tensor &out, at::Tensor &in, const std::vector<int64_t> &out_splits,
                              const std::vector<int64_t> &in_splits) {
    if (int(out_splits.size()) != env_.world_size || int(in_splits.size()) != env_.world_size)
        throw Error("all_to_all: one split size per rank (" + std::to_string(env_.world_size) + ") is needed");
    if (!impl_->group) {
        out.copy_(in);
        return;
    }
    std::vector<int64_t> outs = out_splits, ins = in_splits;
    c10d::AllToAllOptions o;
    o.timeout = timeout_;
    try {
        impl_->group->alltoall_base(out, in, outs, ins, o)->wait(timeout_);
    } catch (const std::exception &e) {
        fail("all_to_all", e);
    }
}

void ProcessGroup::send(at::Tensor &t, int dst) {
    if (!impl_->group) return;
    std::vector<at::Tensor> tensors{t};
    try {
        impl_->group->send(tensors, dst, 0)->wait(timeout_);
    } catch (const std::exception &e) {
        fail("send to rank " + std::to_string(dst), e);
    }
}

void ProcessGroup::recv(at::Tensor &t, int src) {
    if (!impl_->group) return;
    std::vector<at::Tensor> tensors{t};
    try {
        impl_->group->recv(tensors, src, 0)->wait(timeout_);
    } catch (const std::exception &e) {
        fail("receive from rank " + std::to_string(src), e);
    }
}

namespace {

std::vector<uint8_t> bytes(const std::string &s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string text(const std::vector<uint8_t> &b) { return std::string(b.begin(), b.end()); }

} // namespace

std::string ProcessGroup::share(const std::string &value, int src) {
    if (!impl_->group) return value;
    const std::string key = impl_->prefix + "share/" + std::to_string(store_calls_++);
    try {
        if (env_.rank == src) {
            impl_->store->set(key, bytes(value));
            return value;
        }
        impl_->store->wait({key}, timeout_);
        return text(impl_->store->get(key));
    } catch (const std::exception &e) {
        fail("sharing a value through the store", e);
    }
}

std::vector<std::string> ProcessGroup::all_gather(const std::string &value) {
    if (!impl_->group) return {value};
    const std::string prefix = impl_->prefix + "gather/" + std::to_string(store_calls_++) + "/";
    std::vector<std::string> out;
    try {
        impl_->store->set(prefix + std::to_string(env_.rank), bytes(value));
        for (int r = 0; r < env_.world_size; ++r) {
            impl_->store->wait({prefix + std::to_string(r)}, timeout_);
            out.push_back(text(impl_->store->get(prefix + std::to_string(r))));
        }
    } catch (const std::exception &e) {
        fail("gathering values through the store", e);
    }
    return out;
}

} // namespace cdrmix
