// RWKV-7 WKV recurrence on CPU: schemas of the cdrmix::wkv7_* ops and their CPU
// kernels. One task per (batch, head), run in parallel; the recurrence itself is
// in wkv_head_kernels.cpp (vectorised per instruction set). The N x N state is
// float32 (float64 for float64 inputs).
//
// Forward saves the state every `chunk` steps; backward recomputes each chunk's
// states from its checkpoint (memory O(T/chunk * N^2) per head, not O(T * N^2)).
#include "wkv_cpu_common.hpp"

#include <torch/library.h>

namespace cdrmix::ops::cpu {

namespace {

using at::Tensor;
using detail::Dims;
using detail::state_type;
using detail::widened;
using detail::widened_inputs;

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
    AT_DISPATCH_FLOATING_TYPES(acc, "wkv7_forward_cpu", [&] {
        const auto &kern = detail::head_kernels<scalar_t>();
        scalar_t *py = y.data_ptr<scalar_t>(), *pS = sT.data_ptr<scalar_t>(), *pc = chunks.data_ptr<scalar_t>();
        detail::for_each_head<scalar_t>(d, 0, [&](int64_t bh, int64_t bi, int64_t h, scalar_t *) {
            const int64_t off = d.head_offset(bi, h);
            kern.wkv7_forward(head_of<scalar_t>(x, d, off), pS + bh * NN, py + off, pc + bh * NC * NN, chunk);
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
        const int64_t work = kernels::wkv7_backward_workspace(d.N, chunk);
        detail::for_each_head<scalar_t>(d, work, [&](int64_t bh, int64_t bi, int64_t h, scalar_t *scratch) {
            const int64_t off = d.head_offset(bi, h);
            const kernels::Wkv7Grads<scalar_t> g{grads[0].data_ptr<scalar_t>() + off, grads[1].data_ptr<scalar_t>() + off,
                                                 grads[2].data_ptr<scalar_t>() + off, grads[3].data_ptr<scalar_t>() + off,
                                                 grads[4].data_ptr<scalar_t>() + off, grads[5].data_ptr<scalar_t>() + off};
            kern.wkv7_backward(head_of<scalar_t>(x, d, off), pc + bh * NC * NN, chunk, pdy + off, pdS + bh * NN, g,
                               scratch);
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
