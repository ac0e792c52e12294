// RWKV-6 WKV recurrence on CPU: schemas of the cdrmix::wkv6_* ops and their CPU
// kernels. One task per (batch, head), run in parallel; the N x N state stays in
// a per-task buffer in float32 (float64 for float64 inputs).
//
// Per step, with S[i][j] (i: key index, j: value index):
//   y_j = sum_i r_i (u_i k_i v_j + S_{t-1}[i][j]) = (r.(u*k)) v_j + (S_{t-1}^T r)_j
//   S_t[i][j] = w_i S_{t-1}[i][j] + k_i v_j
// Keying the rows by the key index makes the decay a row scale and keeps every
// inner loop a contiguous sweep over j.
//
// Forward saves S_{t0} every `chunk` steps. Backward walks the chunks in
// reverse, recomputing the chunk's states S_{t-1} from its checkpoint (memory
// O(T/chunk * N^2) per head instead of O(T * N^2)). With G = dL/dS_t (starting
// from the gradient of the final state) and c = v.dy, each step applies
//   dr_i = (S_{t-1} dy)_i + u_i k_i c
//   dk_i = (G v)_i + r_i u_i c
//   dv_j = (G^T k)_j + dy_j (r.(u*k))
//   dw_i = sum_j G[i][j] S_{t-1}[i][j]
//   du_i += r_i k_i c                      (summed over t here, over batch by the caller)
//   G <- diag(w) G + r dy^T                (becomes dL/dS_{t-1})
// Only S_{t-1} is needed, never S_t, so no division by w: any decay in [0,1] is fine.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "wkv_cpu_common.hpp"

namespace cdrmix::ops::cpu {

namespace {

using at::Tensor;

using detail::Buf;
using detail::Dims;
using detail::load;
using detail::state_type;

// One recurrence step: S <- diag(w) S + k v^T.
template <class acc_t>
inline void step(acc_t *S, const acc_t *w, const acc_t *k, const acc_t *v, int64_t N) {
    for (int64_t i = 0; i < N; ++i) {
        acc_t *row = S + i * N;
        const acc_t wi = w[i], ki = k[i];
        for (int64_t j = 0; j < N; ++j) row[j] = row[j] * wi + ki * v[j];
    }
}

template <class scalar_t, class acc_t>
void forward_kernel(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &u,
                    const Tensor &s0, Tensor &y, Tensor &sT, Tensor &chunks, int64_t chunk, const Dims &d) {
    const int64_t N = d.N, NN = N * N;
    const int64_t NC = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    const scalar_t *pr = r.data_ptr<scalar_t>(), *pw = w.data_ptr<scalar_t>(), *pk = k.data_ptr<scalar_t>(),
                   *pv = v.data_ptr<scalar_t>(), *pu = u.data_ptr<scalar_t>();
    const acc_t *ps0 = s0.data_ptr<acc_t>();
    scalar_t *py = y.data_ptr<scalar_t>();
    acc_t *psT = sT.data_ptr<acc_t>();
    acc_t *pch = chunk > 0 ? chunks.data_ptr<acc_t>() : nullptr;

    at::parallel_for(0, d.B * d.H, 1, [&](int64_t begin, int64_t end) {
        Buf<acc_t> S(NN), vr(N), vw(N), vk(N), vv(N), vu(N), out(N);
        for (int64_t bh = begin; bh < end; ++bh) {
            const int64_t bi = bh / d.H, h = bh % d.H;
            for (int64_t n = 0; n < N; ++n) vu[n] = static_cast<acc_t>(pu[h * N + n]);
            std::copy(ps0 + bh * NN, ps0 + (bh + 1) * NN, S.data());
            for (int64_t t = 0; t < d.T; ++t) {
                if (pch && t % chunk == 0) std::copy(S.begin(), S.end(), pch + (bh * NC + t / chunk) * NN);
                load(pr, d, bi, t, h, vr.data());
                load(pw, d, bi, t, h, vw.data());
                load(pk, d, bi, t, h, vk.data());
                load(pv, d, bi, t, h, vv.data());
                acc_t ruk = 0;
                for (int64_t i = 0; i < N; ++i) ruk += vr[i] * vu[i] * vk[i];
                for (int64_t j = 0; j < N; ++j) out[j] = ruk * vv[j];
                // Read S_{t-1} into y and advance it to S_t in the same sweep.
                for (int64_t i = 0; i < N; ++i) {
                    acc_t *row = S.data() + i * N;
                    const acc_t ri = vr[i], wi = vw[i], ki = vk[i];
                    for (int64_t j = 0; j < N; ++j) {
                        out[j] += ri * row[j];
                        row[j] = row[j] * wi + ki * vv[j];
                    }
                }
                scalar_t *dst = py + ((bi * d.T + t) * d.H + h) * N;
                for (int64_t j = 0; j < N; ++j) dst[j] = static_cast<scalar_t>(out[j]);
            }
            std::copy(S.begin(), S.end(), psT + bh * NN);
        }
    });
}

template <class scalar_t, class acc_t>
void backward_kernel(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &u,
                     const Tensor &chunks, const Tensor &dy, const Tensor &ds, std::vector<Tensor> &grads,
                     Tensor &du_bh, int64_t chunk, const Dims &d) {
    const int64_t N = d.N, NN = N * N;
    const int64_t NC = (d.T + chunk - 1) / chunk;
    const scalar_t *pr = r.data_ptr<scalar_t>(), *pw = w.data_ptr<scalar_t>(), *pk = k.data_ptr<scalar_t>(),
                   *pv = v.data_ptr<scalar_t>(), *pu = u.data_ptr<scalar_t>(), *pdy = dy.data_ptr<scalar_t>();
    const acc_t *pch = chunks.data_ptr<acc_t>(), *pds = ds.data_ptr<acc_t>();
    scalar_t *gr = grads[0].data_ptr<scalar_t>(), *gw = grads[1].data_ptr<scalar_t>(),
             *gk = grads[2].data_ptr<scalar_t>(), *gv = grads[3].data_ptr<scalar_t>();
    acc_t *gs0 = grads[4].data_ptr<acc_t>(), *gu = du_bh.data_ptr<acc_t>();

    at::parallel_for(0, d.B * d.H, 1, [&](int64_t begin, int64_t end) {
        Buf<acc_t> states(chunk * NN), G(NN);
        Buf<acc_t> vr(N), vw(N), vk(N), vv(N), vu(N), vdy(N);
        Buf<acc_t> dr(N), dw(N), dk(N), dv(N), du(N);
        for (int64_t bh = begin; bh < end; ++bh) {
            const int64_t bi = bh / d.H, h = bh % d.H;
            for (int64_t n = 0; n < N; ++n) vu[n] = static_cast<acc_t>(pu[h * N + n]);
            std::fill(du.begin(), du.end(), acc_t(0));
            std::copy(pds + bh * NN, pds + (bh + 1) * NN, G.data());
            for (int64_t c = NC - 1; c >= 0; --c) {
                const int64_t t0 = c * chunk, t1 = std::min(d.T, t0 + chunk);
                // Recompute S_{t0} .. S_{t1-1} (the states each step reads) from the checkpoint.
                std::copy(pch + (bh * NC + c) * NN, pch + (bh * NC + c + 1) * NN, states.data());
                for (int64_t t = t0 + 1; t < t1; ++t) {
                    acc_t *next = states.data() + (t - t0) * NN;
                    std::copy(next - NN, next, next);
                    load(pw, d, bi, t - 1, h, vw.data());
                    load(pk, d, bi, t - 1, h, vk.data());
                    load(pv, d, bi, t - 1, h, vv.data());
                    step(next, vw.data(), vk.data(), vv.data(), N);
                }
                for (int64_t t = t1 - 1; t >= t0; --t) {
                    const acc_t *Sprev = states.data() + (t - t0) * NN;
                    load(pr, d, bi, t, h, vr.data());
                    load(pw, d, bi, t, h, vw.data());
                    load(pk, d, bi, t, h, vk.data());
                    load(pv, d, bi, t, h, vv.data());
                    load(pdy, d, bi, t, h, vdy.data());
                    acc_t vdot = 0, ruk = 0;
                    for (int64_t j = 0; j < N; ++j) vdot += vv[j] * vdy[j];
                    for (int64_t i = 0; i < N; ++i) ruk += vr[i] * vu[i] * vk[i];
                    for (int64_t j = 0; j < N; ++j) dv[j] = vdy[j] * ruk;
                    for (int64_t i = 0; i < N; ++i) {
                        acc_t *g = G.data() + i * N;
                        const acc_t *sp = Sprev + i * N;
                        const acc_t ri = vr[i], wi = vw[i], ki = vk[i];
                        acc_t dri = 0, dki = 0, dwi = 0;
                        for (int64_t j = 0; j < N; ++j) {
                            dri += sp[j] * vdy[j];
                            dki += g[j] * vv[j];
                            dwi += g[j] * sp[j];
                            dv[j] += g[j] * ki;
                            g[j] = g[j] * wi + ri * vdy[j];
                        }
                        dr[i] = dri + vu[i] * ki * vdot;
                        dk[i] = dki + ri * vu[i] * vdot;
                        dw[i] = dwi;
                        du[i] += ri * ki * vdot;
                    }
                    const int64_t off = ((bi * d.T + t) * d.H + h) * N;
                    for (int64_t n = 0; n < N; ++n) {
                        gr[off + n] = static_cast<scalar_t>(dr[n]);
                        gw[off + n] = static_cast<scalar_t>(dw[n]);
                        gk[off + n] = static_cast<scalar_t>(dk[n]);
                        gv[off + n] = static_cast<scalar_t>(dv[n]);
                    }
                }
            }
            std::copy(G.begin(), G.end(), gs0 + bh * NN);
            std::copy(du.begin(), du.end(), gu + bh * N);
        }
    });
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
    TORCH_CHECK(s0.sizes() == at::IntArrayRef({d.B, d.H, d.N, d.N}) && s0.scalar_type() == state_type(r),
                "wkv6: state must be [B,H,N,N] in float32 (float64 for float64 inputs)");
    Tensor y = at::empty_like(r);
    Tensor sT = at::empty_like(s0);
    const int64_t NC = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    Tensor chunks = at::empty({d.B, d.H, NC, d.N, d.N}, s0.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, r.scalar_type(), "wkv6_forward_cpu", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        forward_kernel<scalar_t, acc_t>(r, w, k, v, u, s0, y, sT, chunks, chunk, d);
    });
    return {y, sT, chunks};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
wkv6_backward_cpu(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &u,
                  const Tensor &chunks, const Tensor &dy, const Tensor &ds, int64_t chunk) {
    const Dims d = detail::dims_of(r, "wkv6");
    TORCH_CHECK(chunk > 0, "wkv6_backward: chunk must be positive");
    TORCH_CHECK(dy.sizes() == r.sizes() && dy.is_contiguous() && ds.is_contiguous(), "wkv6_backward: bad gradients");
    std::vector<Tensor> grads;
    for (int i = 0; i < 4; ++i) grads.push_back(at::empty_like(r));
    grads.push_back(at::empty_like(ds));
    // du per (batch, head), reduced over the batch afterwards so tasks never share an accumulator.
    Tensor du_bh = at::empty({d.B, d.H, d.N}, ds.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, r.scalar_type(), "wkv6_backward_cpu", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        backward_kernel<scalar_t, acc_t>(r, w, k, v, u, chunks, dy, ds, grads, du_bh, chunk, d);
    });
    return {grads[0], grads[1], grads[2], grads[3], du_bh.sum(0).to(r.scalar_type()), grads[4]};
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
