// cdrmix::ops::wkv7: autograd around the dispatcher ops cdrmix::wkv7_forward /
// wkv7_backward (whose device implementations live elsewhere), and the plain
// per-token reference.
#include <cdrmix/ops.hpp>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

namespace cdrmix::ops {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Steps between saved states: backward recomputes at most this many states per head.
constexpr int64_t kChunk = 16;

std::tuple<Tensor, Tensor, Tensor> forward_op(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v,
                                              const Tensor &a, const Tensor &b, const Tensor &s0, int64_t chunk) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("cdrmix::wkv7_forward", "")
                         .typed<std::tuple<Tensor, Tensor, Tensor>(const Tensor &, const Tensor &, const Tensor &,
                                                                   const Tensor &, const Tensor &, const Tensor &,
                                                                   const Tensor &, int64_t)>();
    return op.call(r, w, k, v, a, b, s0, chunk);
}

using Grads = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

Grads backward_op(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &a,
                  const Tensor &b, const Tensor &chunks, const Tensor &dy, const Tensor &ds, int64_t chunk) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("cdrmix::wkv7_backward", "")
                         .typed<Grads(const Tensor &, const Tensor &, const Tensor &, const Tensor &,
                                      const Tensor &, const Tensor &, const Tensor &, const Tensor &,
                                      const Tensor &, int64_t)>();
    return op.call(r, w, k, v, a, b, chunks, dy, ds, chunk);
}

class WKV7Function : public torch::autograd::Function<WKV7Function> {
public:
    static variable_list forward(AutogradContext *ctx, Tensor r, Tensor w, Tensor k, Tensor v, Tensor a, Tensor b,
                                 Tensor s0) {
        auto [y, s_final, chunks] = forward_op(r, w, k, v, a, b, s0, kChunk);
        ctx->save_for_backward({r, w, k, v, a, b, chunks, s_final});
        return {y, s_final};
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const Tensor &r = saved[0];
        Tensor dy = grads[0].defined() ? grads[0].contiguous() : torch::zeros_like(r);
        Tensor ds = grads[1].defined() ? grads[1].contiguous() : torch::zeros_like(saved[7]);
        auto [dr, dw, dk, dv, da, db, ds0] =
            backward_op(r, saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], dy, ds, kChunk);
        return {dr, dw, dk, dv, da, db, ds0};
    }
};

torch::ScalarType state_type(const Tensor &r) { return r.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat; }

Tensor initial_state(const Tensor &r, const Tensor &state) {
    if (state.defined()) return state.to(state_type(r)).contiguous();
    return torch::zeros({r.size(0), r.size(2), r.size(3), r.size(3)}, r.options().dtype(state_type(r)));
}

} // namespace

std::tuple<Tensor, Tensor> wkv7(const Tensor &r_in, const Tensor &w_in, const Tensor &k_in, const Tensor &v_in,
                                const Tensor &a_in, const Tensor &b_in, const Tensor &state) {
    // Under bf16 autocast the inputs arrive mixed (bf16 matmul outputs beside
    // fp32 elementwise results); the kernel takes one dtype: the widest of them.
    torch::ScalarType dt = r_in.scalar_type();
    for (const Tensor *t : {&w_in, &k_in, &v_in, &a_in, &b_in}) dt = c10::promoteTypes(dt, t->scalar_type());
    const Tensor r = r_in.to(dt), w = w_in.to(dt), k = k_in.to(dt), v = v_in.to(dt), a = a_in.to(dt), b = b_in.to(dt);
    Tensor s0 = initial_state(r, state);
    const bool needs_grad = torch::GradMode::is_enabled() &&
                            (r.requires_grad() || w.requires_grad() || k.requires_grad() || v.requires_grad() ||
                             a.requires_grad() || b.requires_grad() || s0.requires_grad());
    if (!needs_grad) {
        auto [y, s_final, chunks] = forward_op(r.contiguous(), w.contiguous(), k.contiguous(), v.contiguous(),
                                               a.contiguous(), b.contiguous(), s0, 0);
        return {y, s_final};
    }
    auto out = WKV7Function::apply(r.contiguous(), w.contiguous(), k.contiguous(), v.contiguous(), a.contiguous(),
                                   b.contiguous(), s0);
    return {out[0], out[1]};
}

std::tuple<Tensor, Tensor> wkv7_reference(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v,
                                          const Tensor &a, const Tensor &b, const Tensor &state) {
    const auto acc = state_type(r);
    Tensor S = state.defined() ? state.to(acc) : torch::zeros({r.size(0), r.size(2), r.size(3), r.size(3)}, r.options().dtype(acc));
    std::vector<Tensor> ys;
    for (int64_t t = 0; t < r.size(1); ++t) {
        auto at = [&](const Tensor &x) { return x.select(1, t).to(acc); }; // [B,H,N]
        Tensor sa = (S * at(a).unsqueeze(2)).sum(-1);
        S = S * at(w).unsqueeze(2) + sa.unsqueeze(-1) * at(b).unsqueeze(2) + at(v).unsqueeze(-1) * at(k).unsqueeze(2);
        ys.push_back((S * at(r).unsqueeze(2)).sum(-1));
    }
    return {torch::stack(ys, 1).to(r.scalar_type()), S};
}

} // namespace cdrmix::ops
