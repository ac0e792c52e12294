// Hash routing (Roller et al. 2021): a token's experts are a fixed function of
// its id, so routing needs no parameters, no balance loss, and never changes
// during training. Mixing function: SplitMix64's finaliser (Steele et al. 2014),
//   mix(z) = z3 ^ (z3 >> 31),  z2 = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9,
//                              z3 = (z2 ^ (z2 >> 27)) * 0x94D049BB133111EB
// (a bijection on 64-bit words, so distinct ids never collide before the modulo).
// With salt = mix(seed ^ (layer << 32)) (layers of one model route differently),
// the j-th candidate of token t is
//   h_j = mix(mix(t ^ salt) + j * 0x9E3779B97F4A7C15),  expert = h_j mod E,
// taken for j = 0, 1, ... skipping experts already chosen, until top_k distinct
// experts are found. Weights are 1/top_k; probs puts 1/top_k on each chosen expert.
// RouteInput.token_ids [N] is required (the MoE layer forwards ForwardContext.token_ids).
// top_k comes from the MoE layer; registered with default_top_k 1 (one expert per id).
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace {

using torch::Tensor;

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

class HashRouter : public cdrmix::Router {
public:
    HashRouter(const cdrmix::Config &cfg, const cdrmix::RouterContext &ctx)
        : E_(ctx.num_experts), where_(cfg.where()), k_(ctx.top_k) {
        if (k_ < 1 || k_ > E_)
            throw cdrmix::Error(cfg.where() + ": top_k must be between 1 and num_experts (" + std::to_string(E_) +
                                "), got " + std::to_string(k_));
        const int64_t seed = cfg.get_int("seed");
        salt_ = mix(static_cast<uint64_t>(seed) ^ (static_cast<uint64_t>(ctx.layer) << 32));
    }

    cdrmix::RouterOutput route(const Tensor &x, const cdrmix::RouteInput &in) override {
        const int64_t N = x.size(0);
        if (!in.token_ids.defined())
            throw cdrmix::Error(where_ + ": hash routing needs token ids (ForwardContext.token_ids), none were given");
        if (in.token_ids.numel() != N)
            throw cdrmix::Error(where_ + ": got " + std::to_string(in.token_ids.numel()) + " token ids for " +
                                std::to_string(N) + " tokens");
        Tensor ids = in.token_ids.reshape({-1}).to(torch::kCPU, torch::kInt64).contiguous();
        Tensor indices = torch::empty({N, k_}, torch::kInt64);
        const int64_t *id = ids.data_ptr<int64_t>();
        int64_t *dst = indices.data_ptr<int64_t>();
        for (int64_t n = 0; n < N; ++n) experts_of(id[n], dst + n * k_);
        indices = indices.to(x.device());
        const auto dtype = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
        const auto opts = torch::TensorOptions().dtype(dtype).device(x.device());
        cdrmix::RouterOutput out;
        out.indices = indices;
        out.weights = torch::full({N, k_}, 1.0 / double(k_), opts);
        out.probs = torch::zeros({N, E_}, opts).scatter_(1, indices, 1.0 / double(k_));
        return out;
    }

    int64_t num_experts() const override { return E_; }
    int64_t top_k() const override { return k_; }

private:
    // The k experts of one token id, in candidate order.
    void experts_of(int64_t token, int64_t *out) const {
        std::vector<bool> taken(static_cast<size_t>(E_), false);
        const uint64_t base = mix(static_cast<uint64_t>(token) ^ salt_);
        int64_t found = 0;
        // 64 * E candidates find k distinct experts unless the hash is badly broken;
        // the fallback (lowest unused ids) only keeps the loop bounded.
        for (uint64_t j = 0; found < k_ && j < 64 * static_cast<uint64_t>(E_); ++j) {
            const auto e = static_cast<int64_t>(mix(base + j * kGolden) % static_cast<uint64_t>(E_));
            if (taken[static_cast<size_t>(e)]) continue;
            taken[static_cast<size_t>(e)] = true;
            out[found++] = e;
        }
        for (int64_t e = 0; found < k_; ++e)
            if (!taken[static_cast<size_t>(e)]) out[found++] = e;
    }

    int64_t E_;
    std::string where_; // for errors raised while routing
    int64_t k_;
    uint64_t salt_;
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Parameter-free hash routing of token ids (Roller et al. 2021)");
    s.integer("seed", 0, "mixed into the hash with the layer index: another seed, another fixed routing");
    return s;
}

} // namespace

CDRMIX_PLUGIN("hash", "1.0.0", "Hash router: experts fixed by the token id") {
    const cdrmix::Schema s = schema();
    registry.add_router(
        "hash", s.doc(), s,
        [](const cdrmix::Config &c, const cdrmix::RouterContext &ctx) { return std::make_shared<HashRouter>(c, ctx); },
        /*default_top_k=*/1);
}
