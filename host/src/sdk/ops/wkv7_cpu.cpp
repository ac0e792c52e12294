// RWKV-7 WKV recurrence on CPU: schemas of the cdrmix::wkv7_* ops and their CPU
// kernels. One task per (batch, head), run in parallel; each head runs either
// the recurrence in wkv_head_kernels.cpp (vectorised per instruction set) or
// the chunked matrix form in wkv7_chunked.cpp (GEMMs over chunks of `chunk`
// steps, built per instruction set too), as chunked::wkv7_form() says. The N x N state is float32 (float64
// for float64 inputs).
//
// Forward saves the state every `chunk` steps; backward recomputes each chunk's
// states from its checkpoint (memory O(T/chunk * N^2) per head, not O(T * N^2)).
// Both forms save and read the same states, so either backward follows either forward.
#include "wkv7_chunked.hpp"
#include "wkv_cpu_common.hpp"

#include <torch/library.h>

namespace cdrmix::ops::cpu {

namespace {

using at::Tensor;
using detail::Dims;
using detail::state_type;
using detail::widened;
using detail::widened_inputs;

// The chunk length of the chunked form when the forward pass saves no states.
constexpr int64_t kUnsavedChunk = 16;

// Sequences shorter than one chunk (decoding: one token) gain nothing from the
// matrix form and would only pay for its scratch memory.
bool chunked_heads_for(const Dims &d, int64_t L) {
    return chunked::wkv7_form() == chunked::Wkv7Form::chunked && d.T >= L;
}

template <class T> kernels::Wkv7Head<T> head_of(const std::vector<Tensor> &x, const Dims &d, int64_t off) {
    return {x[0].data_ptr<T>() + off, x[1].data_ptr<T>() + off, x[2].data_ptr<T>() + off,
            x[3].data_ptr<T>() + off, x[4].data_ptr<T>() + off, x[5].data_ptr<T>() + off,
            d.T,                      d.stride(),               d.N};
}

std::tuple<Tensor, Tensor, Tensor> wkv7_forward_cpu(const Tensor &r, const Tensor &w, const Tensor &k,
                                                    const Tensor &v, const Tensor &a, const Tensor &b,
                                                    const Tensor &s0, int64_t chunk) {
    const Dims d = detail::dims_of(r, "wkv7");
    for (const Tensor *t : {&w, &k, &v, &a, &b})
        TORCH_CHECK(t->sizes() == r.sizes() && t->scalar_type() == r.scalar_type() && t->is_contiguous(),
                    "wkv7: all inputs must be contiguous with the same shape and dtype as r");
    TORCH_CHECK(r.is_contiguous() && s0.is_contiguous(), "wkv7: inputs must be contiguous");
    const auto acc = state_type(r);
    TORCH_CHECK(s0.sizes() == at::IntArrayRef({d.B, d.H, d.N, d.N}) && s0.scalar_type() == acc,
                "wkv7: state must be [B,H,N,N] in float32 (float64 for float64 inputs)");
    const auto x = widened_inputs({&r, &w, &k, &v, &a, &b}, acc);
    Tensor y = at::empty_like(x[0]);
    Tensor sT = s0.clone();
    const int64_t NN = d.N * d.N, NC = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    Tensor chunks = at::empty({d.B, d.H, NC, d.N, d.N}, s0.options());
    const int64_t L = chunk > 0 ? chunk : kUnsavedChunk;
    const bool chunked_heads = chunked_heads_for(d, L);
    const int64_t work = chunked_heads ? chunked::wkv7_forward_workspace(d.N, L) : 0;
    AT_DISPATCH_FLOATING_TYPES(acc, "wkv7_forward_cpu", [&] {
        const auto &kern = detail::head_kernels<scalar_t>();
        scalar_t *py = y.data_ptr<scalar_t>(), *pS = sT.data_ptr<scalar_t>(), *pc = chunks.data_ptr<scalar_t>();
        detail::for_each_head<scalar_t>(d, work, [&](int64_t bh, int64_t bi, int64_t h, scalar_t *scratch) {
            const int64_t off = d.head_offset(bi, h);
            const auto head = head_of<scalar_t>(x, d, off);
            if (chunked_heads)
                kern.wkv7_chunked_forward(kern, head, pS + bh * NN, py + off, chunk > 0 ? pc + bh * NC * NN : nullptr,
                                          L, scratch);
            else
                kern.wkv7_forward(head, pS + bh * NN, py + off, pc + bh * NC * NN, chunk);
        });
    });
    return {y.to(r.scalar_type()), sT, chunks};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
wkv7_backward_cpu(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &a,
                  const Tensor &b, const Tensor &chunks, const Tensor &dy, const Tensor &ds, int64_t chunk) {
    const Dims d = detail::dims_of(r, "wkv7");
    TORCH_CHECK(chunk > 0, "wkv7_backward: chunk must be positive");
    TORCH_CHECK(dy.sizes() == r.sizes() && dy.is_contiguous() && ds.is_contiguous(), "wkv7_backward: bad gradients");
    const auto acc = state_type(r);
    const auto x = widened_inputs({&r, &w, &k, &v, &a, &b, &dy}, acc);
    std::vector<Tensor> grads;
    for (int i = 0; i < 6; ++i) grads.push_back(at::empty_like(x[0]));
    Tensor dS = ds.to(acc).clone();
    const int64_t NN = d.N * d.N, NC = (d.T + chunk - 1) / chunk;
    AT_DISPATCH_FLOATING_TYPES(acc, "wkv7_backward_cpu", [&] {
        const auto &kern = detail::head_kernels<scalar_t>();
        const scalar_t *pc = chunks.data_ptr<scalar_t>(), *pdy = x[6].data_ptr<scalar_t>();
        scalar_t *pdS = dS.data_ptr<scalar_t>();
        const bool chunked_heads = chunked_heads_for(d, chunk);
        const int64_t work = chunked_heads ? chunked::wkv7_backward_workspace(d.N, chunk)
                                           : kernels::wkv7_backward_workspace(d.N, chunk);
        detail::for_each_head<scalar_t>(d, work, [&](int64_t bh, int64_t bi, int64_t h, scalar_t *scratch) {
            const int64_t off = d.head_offset(bi, h);
            const kernels::Wkv7Grads<scalar_t> g{grads[0].data_ptr<scalar_t>() + off, grads[1].data_ptr<scalar_t>() + off,
                                                 grads[2].data_ptr<scalar_t>() + off, grads[3].data_ptr<scalar_t>() + off,
                                                 grads[4].data_ptr<scalar_t>() + off, grads[5].data_ptr<scalar_t>() + off};
            const auto head = head_of<scalar_t>(x, d, off);
            if (chunked_heads)
                kern.wkv7_chunked_backward(kern, head, pc + bh * NC * NN, chunk, pdy + off, pdS + bh * NN, g, scratch);
            else
                kern.wkv7_backward(head, pc + bh * NC * NN, chunk, pdy + off, pdS + bh * NN, g, scratch);
        });
    });
    const auto dt = r.scalar_type();
    return {grads[0].to(dt), grads[1].to(dt), grads[2].to(dt), grads[3].to(dt), grads[4].to(dt), grads[5].to(dt), dS};
}

} // namespace

TORCH_LIBRARY(cdrmix, m) {
    m.def("wkv7_forward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor a, Tensor b, Tensor s0, int chunk)"
          " -> (Tensor y, Tensor s_final, Tensor s_chunks)");
    m.def("wkv7_backward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor a, Tensor b, Tensor s_chunks,"
          " Tensor dy, Tensor ds_final, int chunk)"
          " -> (Tensor dr, Tensor dw, Tensor dk, Tensor dv, Tensor da, Tensor db, Tensor ds0)");
}

TORCH_LIBRARY_IMPL(cdrmix, CPU, m) {
    m.impl("wkv7_forward", &wkv7_forward_cpu);
    m.impl("wkv7_backward", &wkv7_backward_cpu);
}

} // namespace cdrmix::ops::cpu
