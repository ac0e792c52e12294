// RWKV-6 WKV recurrence on CPU: schemas of the cdrmix::wkv6_* ops and their CPU
// kernels. One task per (batch, head), run in parallel; the recurrence itself is
// in wkv_head_kernels.cpp (vectorised per instruction set, formulas there). The
// N x N state is float32 (float64 for float64 inputs), rows keyed by the key
// index so the decay is a row scale and every inner loop a contiguous sweep.
//
// Forward saves the state every `chunk` steps; backward recomputes each chunk's
// states S_{t-1} from its checkpoint. Only S_{t-1} is needed, never S_t, so there
// is no division by w: any decay in [0,1] is fine.
#include "wkv_cpu_common.hpp"

#include <torch/library.h>

namespace cdrmix::ops::cpu {

namespace {

using at::Tensor;
using detail::Dims;
using detail::state_type;
using detail::widened;
using detail::widened_inputs;

template <class T>
kernels::Wkv6Head<T> head_of(const std::vector<Tensor> &x, const Tensor &u, const Dims &d, int64_t off, int64_t h) {
    return {x[0].data_ptr<T>() + off, x[1].data_ptr<T>() + off, x[2].data_ptr<T>() + off, x[3].data_ptr<T>() + off,
            u.data_ptr<T>() + h * d.N, d.T, d.stride(), d.N};
}

std::tuple<Tensor, Tensor, Tensor> wkv6_forward_cpu(const Tensor &r, const Tensor &w, const Tensor &k,
                                                    const Tensor &v, const Tensor &u, const Tensor &s0,
                                                    int64_t chunk) {
    const Dims d = detail::dims_of(r, "wkv6");
    for (const Tensor *t : {&w, &k, &v})
        TORCH_CHECK(t->sizes() == r.sizes() && t->scalar_type() == r.scalar_type() && t->is_contiguous(),
                    "wkv6: r, w, k, v must be contiguous with the same shape and dtype");
    TORCH_CHECK(r.is_contiguous() && u.is_contiguous() && s0.is_contiguous(), "wkv6: inputs must be contiguous");
    TORCH_CHECK(u.sizes() == at::IntArrayRef({d.H, d.N}) && u.scalar_type() == r.scalar_type(),
                "wkv6: u must be [H,N] with the dtype of r");
    const auto acc = state_type(r);
    TORCH_CHECK(s0.sizes() == at::IntArrayRef({d.B, d.H, d.N, d.N}) && s0.scalar_type() == acc,
                "wkv6: state must be [B,H,N,N] in float32 (float64 for float64 inputs)");
    const auto x = widened_inputs({&r, &w, &k, &v}, acc);
    const Tensor uu = widened(u, acc);
    Tensor y = at::empty_like(x[0]);
    Tensor sT = s0.clone();
    const int64_t NN = d.N * d.N, NC = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    Tensor chunks = at::empty({d.B, d.H, NC, d.N, d.N}, s0.options());
    AT_DISPATCH_FLOATING_TYPES(acc, "wkv6_forward_cpu", [&] {
        const auto &kern = detail::head_kernels<scalar_t>();
        scalar_t *py = y.data_ptr<scalar_t>(), *pS = sT.data_ptr<scalar_t>(), *pc = chunks.data_ptr<scalar_t>();
        detail::for_each_head<scalar_t>(d, 0, [&](int64_t bh, int64_t bi, int64_t h, scalar_t *) {
            const int64_t off = d.head_offset(bi, h);
            kern.wkv6_forward(head_of<scalar_t>(x, uu, d, off, h), pS + bh * NN, py + off, pc + bh * NC * NN, chunk);
        });
    });
    return {y.to(r.scalar_type()), sT, chunks};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
wkv6_backward_cpu(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &u,
                  const Tensor &chunks, const Tensor &dy, const Tensor &ds, int64_t chunk) {
    const Dims d = detail::dims_of(r, "wkv6");
    TORCH_CHECK(chunk > 0, "wkv6_backward: chunk must be positive");
    TORCH_CHECK(dy.sizes() == r.sizes() && dy.is_contiguous() && ds.is_contiguous(), "wkv6_backward: bad gradients");
    const auto acc = state_type(r);
    const auto x = widened_inputs({&r, &w, &k, &v, &dy}, acc);
    const Tensor uu = widened(u, acc);
    std::vector<Tensor> grads;
    for (int i = 0; i < 4; ++i) grads.push_back(at::empty_like(x[0]));
    Tensor dS = ds.to(acc).clone();
    // du per (batch, head), summed over the batch afterwards so tasks never share an accumulator.
    Tensor du_bh = at::empty({d.B, d.H, d.N}, dS.options());
    const int64_t NN = d.N * d.N, NC = (d.T + chunk - 1) / chunk;
    AT_DISPATCH_FLOATING_TYPES(acc, "wkv6_backward_cpu", [&] {
        const auto &kern = detail::head_kernels<scalar_t>();
        const scalar_t *pc = chunks.data_ptr<scalar_t>(), *pdy = x[4].data_ptr<scalar_t>();
        scalar_t *pdS = dS.data_ptr<scalar_t>(), *pdu = du_bh.data_ptr<scalar_t>();
        const int64_t work = kernels::wkv6_backward_workspace(d.N, chunk);
        detail::for_each_head<scalar_t>(d, work, [&](int64_t bh, int64_t bi, int64_t h, scalar_t *scratch) {
            const int64_t off = d.head_offset(bi, h);
            const kernels::Wkv6Grads<scalar_t> g{grads[0].data_ptr<scalar_t>() + off, grads[1].data_ptr<scalar_t>() + off,
                                                 grads[2].data_ptr<scalar_t>() + off, grads[3].data_ptr<scalar_t>() + off,
                                                 pdu + bh * d.N};
            kern.wkv6_backward(head_of<scalar_t>(x, uu, d, off, h), pc + bh * NC * NN, chunk, pdy + off,
                               pdS + bh * NN, g, scratch);
        });
    });
    const auto dt = r.scalar_type();
    return {grads[0].to(dt), grads[1].to(dt), grads[2].to(dt), grads[3].to(dt), du_bh.sum(0).to(dt), dS};
}

} // namespace

// The cdrmix namespace is opened by TORCH_LIBRARY in wkv7_cpu.cpp; this adds to it.
TORCH_LIBRARY_FRAGMENT(cdrmix, m) {
    m.def("wkv6_forward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor u, Tensor s0, int chunk)"
          " -> (Tensor y, Tensor s_final, Tensor s_chunks)");
    m.def("wkv6_backward(Tensor r, Tensor w, Tensor k, Tensor v, Tensor u, Tensor s_chunks,"
          " Tensor dy, Tensor ds_final, int chunk)"
          " -> (Tensor dr, Tensor dw, Tensor dk, Tensor dv, Tensor du, Tensor ds0)");
}

TORCH_LIBRARY_IMPL(cdrmix, CPU, m) {
    m.impl("wkv6_forward", &wkv6_forward_cpu);
    m.impl("wkv6_backward", &wkv6_backward_cpu);
}

} // namespace cdrmix::ops::cpu
