// Causal multi-head self-attention, nanoGPT / TardBot style (the model applies the
// pre-norm, so the block sees normalised input), with grouped-query attention,
// rotary position embeddings and an optional sliding window:
//
//   q_h = RoPE(W_q x)_h, k_g = RoPE(W_k x)_g, v_g = (W_v x)_g      per head, head_dim D
//   y_h = softmax(q_h k_g^T / sqrt(D) + mask) v_g                  g = h / (num_heads / num_kv_heads)
//   out = W_o [y_1 .. y_H]
//
// RoPE uses the rotate-half convention (channel i pairs with i + D/2 and turns by
// pos * theta^(-2i/D)) at absolute positions, so a streamed chunk is rotated at
// the position carried in the state. The mask lets the query at position i read
// the key at position j iff j <= i and, with sliding_window W > 0, i - j < W
// (at most the W most recent keys, itself included). LibTorch 1.13 has no fused
// scaled-dot-product attention on the CPU, so the forward is built from few,
// large operations: one GEMM for q, k and v; one RoPE pass over q and k with
// cached tables; the scale and the mask (cached) folded into the score GEMM;
// softmax; one GEMM with v.
//
// Parameters: q_proj [H*D,C], k_proj and v_proj [Hkv*D,C], o_proj [C,H*D], with
// LibTorch's default Linear init and zero biases; o_proj starts at zero (like the
// RWKV blocks' output projections) so a fresh residual stack is the identity.
// State (the KV cache): {k_cache [B,Hkv,Tc,D] after RoPE, v_cache [B,Hkv,Tc,D],
// position (int64 scalar: tokens seen so far)}. With a sliding window only the
// last W-1 keys and values are kept (all the next token can see besides itself),
// so the cache stays bounded; without one it grows by one entry per token.
// A state holding empty caches and position p starts a fresh sequence at p.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace {

using torch::Tensor;

using cdrmix::visible_keys;

class Attention : public cdrmix::Block {
public:
    Attention(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        // Defaults that depend on the width or on other keys (see the schema).
        H_ = cfg.has("num_heads") ? cfg.get_int("num_heads") : std::max<int64_t>(1, C / 64);
        Hkv_ = cfg.has("num_kv_heads") ? cfg.get_int("num_kv_heads") : H_;
        if (H_ % Hkv_ != 0)
            throw cdrmix::Error(cfg.where() + ": key 'num_kv_heads' must be a divisor of num_heads " +
                                std::to_string(H_));
        D_ = cfg.has("head_dim") ? cfg.get_int("head_dim") : C / H_;
        if (D_ < 1) throw cdrmix::Error(cfg.where() + ": head_dim = hidden_size / num_heads is 0; set head_dim");
        rope_ = cfg.get_bool("rope");
        theta_ = cfg.get_double("rope_theta");
        if (rope_ && D_ % 2 != 0)
            throw cdrmix::Error(cfg.where() + ": key 'head_dim' must be even with rope (got " + std::to_string(D_) +
                                ")");
        if (!(theta_ > 0.0)) throw cdrmix::Error(cfg.where() + ": key 'rope_theta' must be positive");
        window_ = cfg.get_int("sliding_window");
        bias_ = cfg.get_bool("bias");

        auto lin = [&](const char *name, int64_t in, int64_t out) {
            return register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias_)));
        };
        q_proj = lin("q_proj", C, H_ * D_);
        k_proj = lin("k_proj", C, Hkv_ * D_);
        v_proj = lin("v_proj", C, Hkv_ * D_);
        o_proj = lin("o_proj", H_ * D_, C);
        torch::NoGradGuard no_grad;
        o_proj->weight.zero_();
        if (bias_)
            for (auto *l : {&q_proj, &k_proj, &v_proj, &o_proj}) (*l)->bias.zero_();
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        const int64_t B = x.size(0), T = x.size(1), G = H_ / Hkv_;
        const bool carried = state && state->size() == 3;
        const int64_t start = carried ? (*state)[2].item<int64_t>() : 0;
        // q, k and v from one product: one pass over x and one larger GEMM
        // (forward and backward) instead of three small ones.
        Tensor qkv = torch::linear(x, torch::cat({q_proj->weight, k_proj->weight, v_proj->weight}),
                                   bias_ ? torch::cat({q_proj->bias, k_proj->bias, v_proj->bias}) : Tensor());
        // q and k side by side [B,T,H+Hkv,D], so RoPE turns both in one pass.
        Tensor qk = qkv.narrow(-1, 0, (H_ + Hkv_) * D_).view({B, T, H_ + Hkv_, D_});
        if (rope_) qk = rotate(qk, start);
        Tensor q = qk.narrow(2, 0, H_).transpose(1, 2);
        Tensor k = qk.narrow(2, H_, Hkv_).transpose(1, 2);
        Tensor v = qkv.narrow(-1, (H_ + Hkv_) * D_, Hkv_ * D_).view({B, T, Hkv_, D_}).transpose(1, 2);
        if (carried) {
            k = torch::cat({(*state)[0], k}, 2);
            v = torch::cat({(*state)[1], v}, 2);
        }
        const int64_t L = k.size(2);

        // The G query heads sharing one KV head are stacked along time, so one
        // product per KV head serves the group without repeating K and V. The
        // 1/sqrt(D) scale and the mask (0 or -inf, added) ride in the same
        // batched GEMM: scores = mask + q k^T / sqrt(D).
        Tensor scores = torch::baddbmm(mask_bias(T, L - T, G, x), q.reshape({B * Hkv_, G * T, D_}),
                                       k.reshape({B * Hkv_, L, D_}).transpose(1, 2), 1.0, 1.0 / std::sqrt(double(D_)));
        Tensor probs = torch::softmax(scores, -1);
        Tensor y = torch::bmm(probs, v.reshape({B * Hkv_, L, D_})).view({B, H_, T, D_}).transpose(1, 2).reshape({B, T, H_ * D_});

        if (state) {
            const int64_t keep = window_ > 0 ? std::min(L, window_ - 1) : L;
            // Copies, so the state pins neither the whole chunk's buffer nor the qkv product.
            k = k.narrow(2, L - keep, keep).contiguous();
            v = v.narrow(2, L - keep, keep).contiguous();
            *state = {k, v, torch::scalar_tensor(start + T, torch::TensorOptions().dtype(torch::kInt64))};
        }
        return o_proj(y);
    }

private:
    // x [B,T,heads,D] turned by RoPE at positions start.., with the cos/sin
    // tables of the last call reused (a training run asks for the same ones every step).
    Tensor rotate(const Tensor &x, int64_t start) {
        const int64_t T = x.size(1), half = D_ / 2;
        if (rope_start_ != start || rope_cos_.size(0) != T || rope_cos_.scalar_type() != x.scalar_type() ||
            rope_cos_.device() != x.device()) {
            auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(x.device());
            // As cdrmix::apply_rope: angles in float64, channel i paired with i + D/2.
            Tensor inv_freq = torch::pow(theta_, torch::arange(half, f64) * (-2.0 / double(D_)));
            Tensor angles = torch::arange(start, start + T, f64).unsqueeze(1) * inv_freq;
            rope_cos_ = torch::cat({angles.cos(), angles.cos()}, -1).to(x.scalar_type()).unsqueeze(1);
            rope_sin_ = torch::cat({angles.sin(), angles.sin()}, -1).to(x.scalar_type()).unsqueeze(1);
            rope_start_ = start;
        }
        Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
        return x * rope_cos_ + rotated * rope_sin_;
    }

    // [G*T, cached+T]: 0 where the query may read the key, -inf elsewhere (the
    // [T, cached+T] visibility repeated for the G stacked query heads); kept from the last call.
    Tensor mask_bias(int64_t T, int64_t cached, int64_t G, const Tensor &like) {
        if (mask_.size(0) != G * T || mask_.size(1) != cached + T || mask_.scalar_type() != like.scalar_type() ||
            mask_.device() != like.device()) {
            Tensor visible = visible_keys(T, cached, window_, like.device());
            mask_ = torch::zeros(visible.sizes(), like.options())
                        .masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity())
                        .repeat({G, 1});
        }
        return mask_;
    }

    int64_t H_, Hkv_, D_, window_;
    bool rope_, bias_;
    double theta_;
    int64_t rope_start_ = -1;
    Tensor rope_cos_, rope_sin_;
    Tensor mask_ = torch::empty({0, 0});
    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Causal softmax attention: GQA, rotate-half RoPE, sliding window, KV-cache state");
    s.integer("num_heads", nullptr, "query heads H").min(1).default_is("max(1, hidden_size / 64)");
    s.integer("num_kv_heads", nullptr, "key/value heads (grouped-query attention); must divide num_heads")
        .min(1)
        .default_is("num_heads");
    s.integer("head_dim", nullptr, "channels per head D (even with rope)").min(1).default_is("hidden_size / num_heads");
    s.boolean("rope", true, "rotary position embeddings on q and k");
    s.number("rope_theta", 10000.0, "RoPE base (positive)");
    s.integer("sliding_window", 0, "keys each query sees, itself included (0: full causal)").min(0);
    s.boolean("bias", false, "biases on the q, k, v and output projections");
    return s;
}

} // namespace

CDRMIX_PLUGIN("attention", "1.0.0", "Causal multi-head self-attention (GQA, RoPE, sliding window, KV cache)") {
    const cdrmix::Schema s = schema();
    registry.add_block("attention", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<Attention>(c, ctx);
                       });
}
