// Multi-head latent attention (DeepSeek-V2; Oxidizr's MLA). Keys and values are
// rebuilt per head from one small latent per token, and a decoupled RoPE key is
// shared by all heads, so the streaming cache holds only the latent and that key:
//
//   c_kv    = RMSNorm(W_dkv x)                      [kv_lora_rank]        (cached)
//   k_rope  = RoPE(W_kr x)                          [qk_rope_head_dim]    (cached, shared by heads)
//   k_nope_h = W_uk,h c_kv,  v_h = W_uv,h c_kv      per head
//   q_h = W_q x, or W_uq RMSNorm(W_dq x) with q_lora_rank > 0; q_h = [q_nope_h, RoPE(q_rope_h)]
//   y_h = softmax((q_nope_h . k_nope_h + q_rope_h . k_rope) / sqrt(qk_nope_head_dim + qk_rope_head_dim) + mask) v_h
//   out = W_o [y_1 .. y_H]
//
// RoPE is rotate-half at absolute positions (see the attention block); the mask
// is causal, optionally limited to the sliding_window most recent keys. Parameter
// names follow DeepSeek-V2: kv_a_proj_with_mqa = [W_dkv; W_kr], kv_a_layernorm,
// kv_b_proj = per head [W_uk,h; W_uv,h], q_proj or q_a_proj / q_a_layernorm /
// q_b_proj, o_proj. (DeepSeek's checkpoints store the RoPE channels interleaved;
// importing them needs those rows permuted to rotate-half order.) o_proj starts
// at zero so a fresh residual stack is the identity; RMSNorm eps is 1e-6.
//
// State: {c_kv [B,Tc,kv_lora_rank] after RMSNorm, k_rope [B,Tc,qk_rope_head_dim]
// after RoPE, position (int64 scalar: tokens seen so far)}: kv_lora_rank +
// qk_rope_head_dim values per token (48 at hidden_size 128), against
// 2 * num_heads * head_dim for a full KV cache. With a sliding window W only the
// last W-1 tokens are kept. A state holding empty caches and position p starts a
// fresh sequence at p.
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace {

using torch::Tensor;

using cdrmix::apply_rope;
using cdrmix::visible_keys;

class RMSNormImpl : public torch::nn::Module {
public:
    explicit RMSNormImpl(int64_t dim) { weight = register_parameter("weight", torch::ones({dim})); }
    Tensor forward(const Tensor &x) { return x * torch::rsqrt(x.square().mean(-1, true) + 1e-6) * weight; }
    Tensor weight;
};
TORCH_MODULE(RMSNorm);

class MLA : public cdrmix::Block {
public:
    MLA(const cdrmix::Config &cfg, const cdrmix::BlockContext &ctx) {
        const int64_t C = ctx.hidden_size;
        // Defaults that depend on the width or on other keys (see the schema).
        H_ = cfg.has("num_heads") ? cfg.get_int("num_heads") : std::max<int64_t>(1, C / 64);
        const int64_t q_rank = cfg.get_int("q_lora_rank");
        R_ = cfg.has("kv_lora_rank") ? cfg.get_int("kv_lora_rank") : std::max<int64_t>(16, std::lround(double(C) / 4.0));
        Dn_ = cfg.get_int("qk_nope_head_dim");
        Dr_ = cfg.get_int("qk_rope_head_dim");
        if (Dr_ % 2 != 0) throw cdrmix::Error(cfg.where() + ": key 'qk_rope_head_dim' must be even");
        Dv_ = cfg.has("v_head_dim") ? cfg.get_int("v_head_dim") : Dn_;
        theta_ = cfg.get_double("rope_theta");
        if (!(theta_ > 0.0)) throw cdrmix::Error(cfg.where() + ": key 'rope_theta' must be positive");
        window_ = cfg.get_int("sliding_window");

        auto lin = [&](const char *name, int64_t in, int64_t out) {
            return register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
        };
        if (q_rank > 0) {
            q_a_proj = lin("q_a_proj", C, q_rank);
            q_a_layernorm = register_module("q_a_layernorm", RMSNorm(q_rank));
            q_b_proj = lin("q_b_proj", q_rank, H_ * (Dn_ + Dr_));
        } else {
            q_proj = lin("q_proj", C, H_ * (Dn_ + Dr_));
        }
        kv_a_proj_with_mqa = lin("kv_a_proj_with_mqa", C, R_ + Dr_);
        kv_a_layernorm = register_module("kv_a_layernorm", RMSNorm(R_));
        kv_b_proj = lin("kv_b_proj", R_, H_ * (Dn_ + Dv_));
        o_proj = lin("o_proj", H_ * Dv_, C);
        torch::NoGradGuard no_grad;
        o_proj->weight.zero_();
    }

    Tensor forward(const Tensor &x, cdrmix::BlockState *state, cdrmix::ForwardContext &) override {
        const int64_t B = x.size(0), T = x.size(1);
        const bool carried = state && state->size() == 3;
        const int64_t start = carried ? (*state)[2].item<int64_t>() : 0;

        Tensor q = q_proj ? q_proj(x) : q_b_proj(q_a_layernorm(q_a_proj(x)));
        q = q.view({B, T, H_, Dn_ + Dr_}).transpose(1, 2);
        Tensor q_nope = q.narrow(-1, 0, Dn_);
        Tensor q_rope = apply_rope(q.narrow(-1, Dn_, Dr_), start, theta_);

        Tensor compressed = kv_a_proj_with_mqa(x);
        Tensor c_kv = kv_a_layernorm(compressed.narrow(-1, 0, R_));               // [B,T,R]
        Tensor k_rope = apply_rope(compressed.narrow(-1, R_, Dr_), start, theta_); // [B,T,Dr]
        if (carried) {
            c_kv = torch::cat({(*state)[0], c_kv}, 1);
            k_rope = torch::cat({(*state)[1], k_rope}, 1);
        }
        const int64_t L = c_kv.size(1);

        Tensor kv = kv_b_proj(c_kv).view({B, L, H_, Dn_ + Dv_}).transpose(1, 2);
        Tensor k_nope = kv.narrow(-1, 0, Dn_), v = kv.narrow(-1, Dn_, Dv_);
        Tensor scores = torch::matmul(q_nope, k_nope.transpose(-2, -1)) +
                        torch::matmul(q_rope, k_rope.unsqueeze(1).transpose(-2, -1)); // k_rope broadcasts over heads
        scores = (scores / std::sqrt(double(Dn_ + Dr_)))
                     .masked_fill(visible_keys(T, L - T, window_, x.device()).logical_not(),
                                  -std::numeric_limits<double>::infinity());
        Tensor y = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({B, T, H_ * Dv_});

        if (state) {
            const int64_t keep = window_ > 0 ? std::min(L, window_ - 1) : L;
            if (keep < L) { // copy, so the state does not pin the whole chunk's buffer
                c_kv = c_kv.narrow(1, L - keep, keep).clone();
                k_rope = k_rope.narrow(1, L - keep, keep).clone();
            }
            *state = {c_kv, k_rope, torch::scalar_tensor(start + T, torch::TensorOptions().dtype(torch::kInt64))};
        }
        return o_proj(y);
    }

private:
    int64_t H_, R_, Dn_, Dr_, Dv_, window_;
    double theta_;
    torch::nn::Linear q_proj{nullptr}, q_a_proj{nullptr}, q_b_proj{nullptr};
    torch::nn::Linear kv_a_proj_with_mqa{nullptr}, kv_b_proj{nullptr}, o_proj{nullptr};
    RMSNorm q_a_layernorm{nullptr}, kv_a_layernorm{nullptr};
};

cdrmix::Schema schema() {
    cdrmix::Schema s("Multi-head latent attention: cache of one latent plus one RoPE key per token");
    s.integer("num_heads", nullptr, "query heads").min(1).default_is("max(1, hidden_size / 64)");
    s.integer("q_lora_rank", 0, "rank of the query compression W_uq W_dq (0: full-rank W_q)").min(0);
    s.integer("kv_lora_rank", nullptr, "size of the cached key/value latent c_kv")
        .min(1)
        .default_is("max(16, round(hidden_size / 4))");
    s.integer("qk_nope_head_dim", 32, "per-head query/key channels without RoPE").min(1);
    s.integer("qk_rope_head_dim", 16, "RoPE channels of the shared key and each query (even)").min(1);
    s.integer("v_head_dim", nullptr, "per-head value channels").min(1).default_is("qk_nope_head_dim");
    s.number("rope_theta", 10000.0, "RoPE base (positive)");
    s.integer("sliding_window", 0, "keys each query sees, itself included (0: full causal)").min(0);
    return s;
}

} // namespace

CDRMIX_PLUGIN("mla", "1.0.0", "Multi-head latent attention (DeepSeek-V2): latent KV cache, decoupled RoPE") {
    const cdrmix::Schema s = schema();
    registry.add_block("mla", s.doc(), s,
                       [](const cdrmix::Config &c, const cdrmix::BlockContext &ctx) {
                           return std::make_shared<MLA>(c, ctx);
                       });
}
