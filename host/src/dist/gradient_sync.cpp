#include "dist/gradient_sync.hpp"

#include <cdrmix/error.hpp>

#include <torch/csrc/autograd/engine.h>
#include <torch/torch.h>

#include <chrono>
#include <map>
#include <mutex>

namespace cdrmix {

struct GradientSync::State {
    struct Bucket {
        torch::Tensor flat;               // the bucket's gradients, back to back
        std::vector<size_t> members;      // parameter indices
        size_t pending = 0;               // members whose gradient is not in yet
        bool started = false;
        PendingCollective work;
    };
    struct Slot {
        size_t bucket = 0;
        int64_t offset = 0;
        bool ready = false;
    };

    ProcessGroup &group;
    std::vector<torch::Tensor> params;
    double divide_by = 1;
    std::vector<std::shared_ptr<State>> followers; // reduce in this one's passes, right after it
    bool led = false;                              // a follower: its leader's final callback finishes its pass
    std::vector<Bucket> buckets;
    std::vector<Slot> slots;
    std::mutex mutex;
    bool enabled = true;
    bool in_pass = false;      // a reducing backward is under way (its final callback is queued)
    size_t next_bucket = 0;    // buckets start in this order
    double last_wait_s = 0;

    State(ProcessGroup &g, std::vector<torch::Tensor> p, double d) : group(g), params(std::move(p)), divide_by(d) {}

    torch::Tensor slot_view(size_t i) {
        const Slot &s = slots[i];
        return buckets[s.bucket].flat.narrow(0, s.offset, params[i].numel()).view(params[i].sizes());
    }

    void start_ready_buckets() {
        while (next_bucket < buckets.size() && buckets[next_bucket].pending == 0) {
            Bucket &b = buckets[next_bucket++];
            b.started = true;
            b.work = group.start_all_reduce(b.flat);
        }
    }

    void begin_pass() {
        in_pass = true;
        next_bucket = 0;
        for (auto &b : buckets) {
            b.pending = b.members.size();
            b.started = false;
        }
        for (auto &s : slots) s.ready = false;
        if (led) return;
        // Runs once the whole backward is done, in the thread that called
        // backward; followers finish right after, so every rank issues the
        // groups' collectives in the same order.
        torch::autograd::Engine::get_default_engine().queue_callback([this] {
            finish_pass();
            for (auto &f : followers) f->finish_pass();
        });
        for (auto &f : followers) {
            std::lock_guard<std::mutex> lock(f->mutex);
            if (f->enabled && !f->in_pass) f->begin_pass();
        }
    }

    void on_gradient(size_t i, const torch::Tensor &grad) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!enabled) return;
        if (!in_pass) begin_pass();
        Slot &s = slots[i];
        if (s.ready) throw Error("gradient sync: parameter " + std::to_string(i) +
                                 " got two gradients in one backward (reentrant backward is not supported)");
        torch::NoGradGuard no_grad;
        torch::Tensor view = slot_view(i);
        view.copy_(grad);
        // What earlier micro-batches accumulated is part of this step's gradient.
        const torch::Tensor &held = params[i].grad();
        if (held.defined()) view.add_(held);
        s.ready = true;
        if (--buckets[s.bucket].pending == 0) start_ready_buckets();
    }

    void finish_pass() {
        std::lock_guard<std::mutex> lock(mutex);
        if (!in_pass) return; // a follower whose leader did not reduce (sync switched off in between)
        in_pass = false;
        torch::NoGradGuard no_grad;
        // used[i] > 0 after the reduce: some rank has a gradient for parameter i.
        torch::Tensor used = torch::zeros({int64_t(params.size())}, torch::kFloat32);
        float *u = used.data_ptr<float>();
        for (size_t i = 0; i < params.size(); ++i) {
            Slot &s = slots[i];
            const torch::Tensor &held = params[i].grad();
            u[i] = s.ready || held.defined() ? 1.f : 0.f;
            if (s.ready) continue;
            torch::Tensor view = slot_view(i);
            if (held.defined())
                view.copy_(held);
            else
                view.zero_();
            s.ready = true;
            --buckets[s.bucket].pending;
        }
        start_ready_buckets();
        PendingCollective used_work = group.start_all_reduce(used);
        const auto t0 = std::chrono::steady_clock::now();
        for (auto &b : buckets) b.work.wait();
        used_work.wait();
        last_wait_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (auto &b : buckets) b.flat.div_(divide_by);
        for (size_t i = 0; i < params.size(); ++i) {
            if (u[i] == 0.f) continue; // no rank used it: no gradient, as in one process
            torch::Tensor mean = slot_view(i);
            torch::Tensor &g = params[i].mutable_grad();
            if (g.defined())
                g.copy_(mean);
            else
                g = mean.clone(); // not a view: the next step's accumulation must not write into the bucket
        }
    }
};

GradientSync::GradientSync(ProcessGroup &group, std::vector<torch::Tensor> params, double divide_by,
                           int64_t bucket_bytes)
    : state_(std::make_shared<State>(group, std::move(params), divide_by > 0 ? divide_by : group.world_size())) {
    State &st = *state_;
    const std::vector<torch::Tensor> &trainable = st.params;
    st.slots.resize(trainable.size());
    // Buckets of one dtype and device each, filled in reverse order of registration.
    std::map<std::pair<int, std::string>, size_t> open; // (dtype, device) -> bucket being filled
    std::vector<int64_t> filled;                         // elements in each bucket
    for (size_t k = trainable.size(); k-- > 0;) {
        const torch::Tensor &p = trainable[k];
        const auto key = std::make_pair(int(p.scalar_type()), p.device().str());
        auto it = open.find(key);
        if (it == open.end() || filled[it->second] * int64_t(p.element_size()) >= bucket_bytes) {
            st.buckets.emplace_back();
            st.buckets.back().flat = torch::empty({0}, p.options());
            filled.push_back(0);
            it = open.insert_or_assign(key, st.buckets.size() - 1).first;
        }
        State::Bucket &b = st.buckets[it->second];
        b.members.push_back(k);
        st.slots[k] = {it->second, filled[it->second], false};
        filled[it->second] += p.numel();
    }
    for (size_t b = 0; b < st.buckets.size(); ++b)
        st.buckets[b].flat = torch::zeros({filled[b]}, st.buckets[b].flat.options());
    std::weak_ptr<State> weak = state_;
    for (size_t k = 0; k < trainable.size(); ++k) {
        if (!trainable[k].requires_grad()) throw Error("gradient sync: parameter " + std::to_string(k) + " takes no gradient");
        hooks_.push_back(trainable[k].register_hook([weak, k](torch::Tensor grad) {
            if (auto s = weak.lock()) s->on_gradient(k, grad);
        }));
    }
}

GradientSync::~GradientSync() {
    for (size_t k = 0; k < hooks_.size(); ++k) state_->params[k].remove_hook(hooks_[k]);
}

void GradientSync::set_enabled(bool enabled) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->enabled = enabled;
}

void GradientSync::lead(GradientSync &other) {
    std::scoped_lock lock(state_->mutex, other.state_->mutex);
    if (other.state_->led || !other.state_->followers.empty())
        throw Error("gradient sync: a sync follows at most one leader and leads no other");
    other.state_->led = true;
    state_->followers.push_back(other.state_);
}

double GradientSync::last_wait_s() const { return state_->last_wait_s; }

namespace {

// Groups tensors by dtype and device, each group flattened into one buffer.
std::map<std::pair<int, std::string>, std::vector<size_t>> by_kind(const std::vector<torch::Tensor> &tensors) {
    std::map<std::pair<int, std::string>, std::vector<size_t>> groups;
    for (size_t i = 0; i < tensors.size(); ++i)
        groups[{int(tensors[i].scalar_type()), tensors[i].device().str()}].push_back(i);
    return groups;
}

uint64_t fnv1a(const torch::Tensor &t) {
    const torch::Tensor c = t.detach().cpu().contiguous();
    const auto *p = static_cast<const unsigned char *>(c.data_ptr());
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0, n = c.numel() * c.element_size(); i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

} // namespace

void broadcast_tensors(ProcessGroup &group, const std::vector<torch::Tensor> &tensors, int src) {
    if (group.world_size() == 1) return;
    torch::NoGradGuard no_grad;
    for (const auto &[kind, members] : by_kind(tensors)) {
        std::vector<torch::Tensor> flat;
        for (size_t i : members) flat.push_back(tensors[i].detach().reshape({-1}));
        torch::Tensor buffer = torch::cat(flat).cpu().contiguous();
        group.broadcast(buffer, src);
        int64_t at = 0;
        for (size_t i : members) {
            torch::Tensor t = tensors[i].detach();
            t.copy_(buffer.narrow(0, at, t.numel()).view(t.sizes()));
            at += t.numel();
        }
    }
}

void check_tensors_equal(ProcessGroup &group, const std::vector<torch::Tensor> &tensors,
                         const std::vector<std::string> &names, const std::string &what) {
    if (group.world_size() == 1) return;
    torch::Tensor hi = torch::empty({int64_t(tensors.size())}, torch::kInt64);
    for (size_t i = 0; i < tensors.size(); ++i) hi[int64_t(i)] = int64_t(fnv1a(tensors[i]));
    torch::Tensor lo = hi.clone();
    group.all_reduce(hi, ReduceOp::Max);
    group.all_reduce(lo, ReduceOp::Min);
    const torch::Tensor differ = hi.ne(lo).nonzero();
    if (differ.numel() > 0) {
        const int64_t first = differ[0][0].item<int64_t>();
        throw Error(what + ": the ranks hold different values of '" + names[size_t(first)] + "' (and " +
                    std::to_string(differ.size(0) - 1) + " more): every rank must load the same checkpoint");
    }
}

} // namespace cdrmix
