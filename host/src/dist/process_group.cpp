#include "dist/process_group.hpp"

#include <cdrmix/error.hpp>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <c10/macros/Macros.h>
#ifdef C10_USE_GLOG // Debian's LibTorch logs through glog; a PyTorch wheel's does not
#include <glog/logging.h>
#endif

#include <cstdio>
#include <cstdlib>

namespace cdrmix {

ReduceOp reduce_op_from(const std::string &name) {
    if (name == "sum") return ReduceOp::Sum;
    if (name == "avg") return ReduceOp::Avg;
    if (name == "max") return ReduceOp::Max;
    if (name == "min") return ReduceOp::Min;
    throw Error("unknown reduce op '" + name + "' (sum, avg, max or min)");
}

struct ProcessGroup::Impl {
    c10::intrusive_ptr<c10d::TCPStore> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
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
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::barrier() {
    if (!impl_->group) return;
    try {
        impl_->group->barrier()->wait(timeout_);
    } catch (const std::exception &e) {
        throw Error("rank " + std::to_string(env_.rank) + ": barrier failed: " + first_line(e));
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
        throw Error("rank " + std::to_string(env_.rank) + ": all_reduce failed: " + first_line(e));
    }
    if (op == ReduceOp::Avg) t.div_(env_.world_size);
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
        throw Error("rank " + std::to_string(env_.rank) + ": broadcast failed: " + first_line(e));
    }
}

} // namespace cdrmix
