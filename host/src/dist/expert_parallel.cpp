#include "dist/expert_parallel.hpp"

#include <cdrmix/config.hpp>
#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <chrono>
#include <numeric>
#include <unordered_map>

namespace cdrmix {

// The all-to-all as an autograd op: backward sends each gradient row back to
// the member its row came from (the same all-to-all with the counts swapped).
struct ExchangeOp : torch::autograd::Function<ExchangeOp> {
    static torch::Tensor forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &rows, int64_t group,
                                 std::vector<int64_t> send, std::vector<int64_t> recv) {
        ctx->saved_data["group"] = group;
        ctx->saved_data["send"] = send;
        ctx->saved_data["recv"] = recv;
        return reinterpret_cast<ExpertParallel *>(group)->move_rows(rows, send, recv);
    }

    static torch::autograd::tensor_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::tensor_list grads) {
        auto *group = reinterpret_cast<ExpertParallel *>(ctx->saved_data["group"].toInt());
        const std::vector<int64_t> send = ctx->saved_data["send"].toIntVector();
        const std::vector<int64_t> recv = ctx->saved_data["recv"].toIntVector();
        return {group->move_rows(grads[0], recv, send), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

namespace {

std::vector<int> ranks_from(int first, int count, int stride) {
    std::vector<int> r;
    for (int i = 0; i < count; ++i) r.push_back(first + i * stride);
    return r;
}

} // namespace

ExpertParallel::ExpertParallel(ProcessGroup &world, int64_t size) : world_(world) {
    const int W = world.world_size();
    if (size < 1 || W % size != 0)
        throw Error("model: expert_parallel is " + std::to_string(size) + ", which does not divide the world size " +
                    std::to_string(W) + " (expert groups are that many consecutive ranks)");
    const int P = int(size), me = world.rank();
    // Every rank joins its expert group first, then its replica group, so no two ranks wait on each other crosswise.
    experts_ = world.subgroup(ranks_from(me / P * P, P, 1), "experts" + std::to_string(me / P));
    replicas_ = world.subgroup(ranks_from(me % P, W / P, P), "replicas" + std::to_string(me % P));
}

torch::Tensor ExpertParallel::exchange(const torch::Tensor &rows, const std::vector<int64_t> &counts,
                                       std::vector<int64_t> &received) {
    const int64_t P = size();
    if (int64_t(counts.size()) != P)
        throw Error("expert exchange: " + std::to_string(counts.size()) + " counts for a group of " + std::to_string(P));
    const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
    if (rows.dim() < 1 || rows.size(0) != total)
        throw Error("expert exchange: the counts add up to " + std::to_string(total) + " rows, the tensor has " +
                    std::to_string(rows.dim() < 1 ? 0 : rows.size(0)));
    torch::Tensor out_counts = torch::empty({P}, torch::kInt64);
    torch::Tensor in_counts = torch::tensor(counts, torch::kInt64);
    const std::vector<int64_t> ones(size_t(P), 1);
    const auto t0 = std::chrono::steady_clock::now();
    experts_->all_to_all(out_counts, in_counts, ones, ones);
    exchange_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    received.assign(out_counts.data_ptr<int64_t>(), out_counts.data_ptr<int64_t>() + P);
    return ExchangeOp::apply(rows, reinterpret_cast<int64_t>(this), counts, received);
}

torch::Tensor ExpertParallel::move_rows(const torch::Tensor &rows, const std::vector<int64_t> &send,
                                        const std::vector<int64_t> &recv) {
    const auto t0 = std::chrono::steady_clock::now();
    // Gloo takes contiguous CPU buffers; the result goes back to the rows' device.
    torch::Tensor in = rows.detach().to(torch::kCPU).contiguous();
    std::vector<int64_t> shape = rows.sizes().vec();
    shape[0] = std::accumulate(recv.begin(), recv.end(), int64_t(0));
    torch::Tensor out = torch::empty(shape, in.options());
    experts_->all_to_all(out, in, recv, send);
    exchange_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out.to(rows.device());
}

double ExpertParallel::take_exchange_seconds() {
    const double s = exchange_s_;
    exchange_s_ = 0;
    return s;
}

void ExpertParallel::hold(const torch::nn::Module &experts) {
    if (!layout_.empty()) throw Error("expert group: hold() after the layout was taken (build the model first)");
    std::vector<torch::Tensor> tensors = experts.parameters();
    for (const auto &b : experts.buffers()) tensors.push_back(b);
    for (const auto &t : tensors) held_.insert(t.unsafeGetTensorImpl());
    held_by_call_.push_back(std::move(tensors));
}

const std::vector<ExpertParallel::Entry> &ExpertParallel::layout(const torch::nn::Module &root) {
    if (!layout_.empty()) return layout_;
    // Which hold() call (and whether as a parameter) each held tensor came from.
    std::unordered_map<const void *, size_t> call_of;
    for (size_t c = 0; c < held_by_call_.size(); ++c)
        for (const auto &t : held_by_call_[c]) call_of[t.unsafeGetTensorImpl()] = c;

    // Each member's held names, shapes and dtypes, per call: [call][param?][...].
    auto describe = [](const std::string &name, const torch::Tensor &t) {
        return Json{{"name", name}, {"shape", t.sizes().vec()}, {"dtype", int(t.scalar_type())}};
    };
    Json mine = Json::array();
    for (size_t c = 0; c < held_by_call_.size(); ++c) mine.push_back({{"params", Json::array()}, {"buffers", Json::array()}});
    const auto params = root.named_parameters(), buffers = root.named_buffers();
    for (const auto &p : params)
        if (auto it = call_of.find(p.value().unsafeGetTensorImpl()); it != call_of.end())
            mine[it->second]["params"].push_back(describe(p.key(), p.value()));
    for (const auto &b : buffers)
        if (auto it = call_of.find(b.value().unsafeGetTensorImpl()); it != call_of.end())
            mine[it->second]["buffers"].push_back(describe(b.key(), b.value()));
    std::vector<Json> members;
    for (const std::string &text : experts_->all_gather(mine.dump())) members.push_back(Json::parse(text));
    for (size_t m = 0; m < members.size(); ++m)
        if (members[m].size() != held_by_call_.size())
            throw Error("expert group: member " + std::to_string(m) + " holds experts of " +
                        std::to_string(members[m].size()) + " layers, this rank of " +
                        std::to_string(held_by_call_.size()) + " (the ranks built different models)");

    // The single-process order: a layer's experts where this rank's share
    // sits, every member's share in member order.
    std::vector<bool> placed;
    auto walk = [&](const auto &named, bool parameter) {
        const char *kind = parameter ? "params" : "buffers";
        placed.assign(held_by_call_.size(), false);
        std::unordered_map<std::string, torch::Tensor> by_name;
        for (const auto &item : named) by_name[item.key()] = item.value();
        for (const auto &item : named) {
            const auto it = call_of.find(item.value().unsafeGetTensorImpl());
            if (it == call_of.end()) {
                layout_.push_back({item.key(), item.value().sizes().vec(), item.value().scalar_type(), parameter, -1,
                                   item.value()});
                continue;
            }
            const size_t c = it->second;
            if (placed[c]) continue;
            placed[c] = true;
            for (size_t m = 0; m < members.size(); ++m)
                for (const auto &d : members[m][c][kind]) {
                    Entry e{d["name"].get<std::string>(), d["shape"].get<std::vector<int64_t>>(),
                            c10::ScalarType(d["dtype"].get<int>()), parameter, int64_t(m), torch::Tensor()};
                    if (int64_t(m) == rank()) e.local = by_name.at(e.name);
                    layout_.push_back(std::move(e));
                }
        }
    };
    walk(params, true);
    walk(buffers, false);
    return layout_;
}

} // namespace cdrmix
