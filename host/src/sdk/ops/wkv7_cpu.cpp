// RWKV-7 WKV recurrence on CPU: schemas of the cdrmix::wkv7_* ops and their CPU
// kernels. One task per (batch, head), run in parallel; the N x N state stays in
// a per-task buffer in float32 (float64 for float64 inputs).
//
// Forward saves the state every `chunk` steps. Backward walks the chunks in
// reverse, recomputing the chunk's states from its checkpoint (memory
// O(T/chunk * N^2) per head instead of O(T * N^2)) and applying, per step:
//   dS += dy r^T;  dr = S_t^T dy;  dv = dS k;  dk = dS^T v;  db = dS^T sa;
//   dsa = dS b;  dw = colsum(dS .* S_{t-1});  da = S_{t-1}^T dsa;
//   dS <- dS diag(w) + dsa a^T
// where sa = S_{t-1} a.
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

// The per-step transition inputs w, k, v, a, b of (b, t, h).
template <class scalar_t, class acc_t> struct TransitionInputs {
    const scalar_t *w, *k, *v, *a, *b;
    void load(const Dims &d, int64_t bi, int64_t t, int64_t h, acc_t *w_, acc_t *k_, acc_t *v_, acc_t *a_,
              acc_t *b_) const {
        detail::load(w, d, bi, t, h, w_);
        detail::load(k, d, bi, t, h, k_);
        detail::load(v, d, bi, t, h, v_);
        detail::load(a, d, bi, t, h, a_);
        detail::load(b, d, bi, t, h, b_);
    }
};

// One recurrence step: S <- S diag(w) + (S a) b^T + v k^T; writes sa = S_{t-1} a.
template <class acc_t>
inline void step(acc_t *S, const acc_t *w, const acc_t *k, const acc_t *v, const acc_t *a, const acc_t *b,
                 acc_t *sa, int64_t N) {
    for (int64_t i = 0; i < N; ++i) {
        const acc_t *row = S + i * N;
        acc_t s = 0;
        for (int64_t j = 0; j < N; ++j) s += row[j] * a[j];
        sa[i] = s;
    }
    for (int64_t i = 0; i < N; ++i) {
        acc_t *row = S + i * N;
        const acc_t si = sa[i], vi = v[i];
        for (int64_t j = 0; j < N; ++j) row[j] = row[j] * w[j] + si * b[j] + vi * k[j];
    }
}

template <class scalar_t, class acc_t>
void forward_kernel(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &a,
                    const Tensor &b, const Tensor &s0, Tensor &y, Tensor &sT, Tensor &chunks, int64_t chunk,
                    const Dims &d) {
    const int64_t N = d.N, NN = N * N;
    const int64_t NC = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    const scalar_t *pr = r.data_ptr<scalar_t>();
    const TransitionInputs<scalar_t, acc_t> in{w.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                                               a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>()};
    const acc_t *ps0 = s0.data_ptr<acc_t>();
    scalar_t *py = y.data_ptr<scalar_t>();
    acc_t *psT = sT.data_ptr<acc_t>();
    acc_t *pch = chunk > 0 ? chunks.data_ptr<acc_t>() : nullptr;

    at::parallel_for(0, d.B * d.H, 1, [&](int64_t begin, int64_t end) {
        Buf<acc_t> S(NN), vr(N), vw(N), vk(N), vv(N), va(N), vb(N), sa(N);
        for (int64_t bh = begin; bh < end; ++bh) {
            const int64_t bi = bh / d.H, h = bh % d.H;
            std::copy(ps0 + bh * NN, ps0 + (bh + 1) * NN, S.data());
            for (int64_t t = 0; t < d.T; ++t) {
                if (pch && t % chunk == 0) std::copy(S.begin(), S.end(), pch + (bh * NC + t / chunk) * NN);
                load(pr, d, bi, t, h, vr.data());
                in.load(d, bi, t, h, vw.data(), vk.data(), vv.data(), va.data(), vb.data());
                step(S.data(), vw.data(), vk.data(), vv.data(), va.data(), vb.data(), sa.data(), N);
                scalar_t *out = py + ((bi * d.T + t) * d.H + h) * N;
                for (int64_t i = 0; i < N; ++i) {
                    const acc_t *row = S.data() + i * N;
                    acc_t s = 0;
                    for (int64_t j = 0; j < N; ++j) s += row[j] * vr[j];
                    out[i] = static_cast<scalar_t>(s);
                }
            }
            std::copy(S.begin(), S.end(), psT + bh * NN);
        }
    });
}

template <class scalar_t, class acc_t>
void backward_kernel(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &a,
                     const Tensor &b, const Tensor &chunks, const Tensor &dy, const Tensor &ds,
                     std::vector<Tensor> &grads, int64_t chunk, const Dims &d) {
    const int64_t N = d.N, NN = N * N;
    const int64_t NC = (d.T + chunk - 1) / chunk;
    const scalar_t *pr = r.data_ptr<scalar_t>(), *pdy = dy.data_ptr<scalar_t>();
    const TransitionInputs<scalar_t, acc_t> in{w.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                                               a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>()};
    const acc_t *pch = chunks.data_ptr<acc_t>(), *pds = ds.data_ptr<acc_t>();
    scalar_t *gr = grads[0].data_ptr<scalar_t>(), *gw = grads[1].data_ptr<scalar_t>(),
             *gk = grads[2].data_ptr<scalar_t>(), *gv = grads[3].data_ptr<scalar_t>(),
             *ga = grads[4].data_ptr<scalar_t>(), *gb = grads[5].data_ptr<scalar_t>();
    acc_t *gs0 = grads[6].data_ptr<acc_t>();

    at::parallel_for(0, d.B * d.H, 1, [&](int64_t begin, int64_t end) {
        Buf<acc_t> states((chunk + 1) * NN), sas(chunk * N), dS(NN);
        Buf<acc_t> vr(N), vw(N), vk(N), vv(N), va(N), vb(N), vdy(N);
        Buf<acc_t> dr(N), dw(N), dk(N), dv(N), da(N), db(N), dsa(N);
        for (int64_t bh = begin; bh < end; ++bh) {
            const int64_t bi = bh / d.H, h = bh % d.H;
            std::copy(pds + bh * NN, pds + (bh + 1) * NN, dS.data());
            for (int64_t c = NC - 1; c >= 0; --c) {
                const int64_t t0 = c * chunk, t1 = std::min(d.T, t0 + chunk);
                // Recompute S_{t0} .. S_{t1} from the checkpoint.
                std::copy(pch + (bh * NC + c) * NN, pch + (bh * NC + c + 1) * NN, states.data());
                for (int64_t t = t0; t < t1; ++t) {
                    acc_t *next = states.data() + (t - t0 + 1) * NN;
                    std::copy(states.data() + (t - t0) * NN, states.data() + (t - t0) * NN + NN, next);
                    in.load(d, bi, t, h, vw.data(), vk.data(), vv.data(), va.data(), vb.data());
                    step(next, vw.data(), vk.data(), vv.data(), va.data(), vb.data(), sas.data() + (t - t0) * N, N);
                }
                for (int64_t t = t1 - 1; t >= t0; --t) {
                    const acc_t *Sprev = states.data() + (t - t0) * NN;
                    const acc_t *Scur = Sprev + NN;
                    const acc_t *sa = sas.data() + (t - t0) * N;
                    load(pr, d, bi, t, h, vr.data());
                    in.load(d, bi, t, h, vw.data(), vk.data(), vv.data(), va.data(), vb.data());
                    load(pdy, d, bi, t, h, vdy.data());
                    std::fill(dr.begin(), dr.end(), acc_t(0));
                    std::fill(dk.begin(), dk.end(), acc_t(0));
                    std::fill(db.begin(), db.end(), acc_t(0));
                    std::fill(dw.begin(), dw.end(), acc_t(0));
                    std::fill(da.begin(), da.end(), acc_t(0));
                    for (int64_t i = 0; i < N; ++i) {
                        acc_t *g = dS.data() + i * N;
                        const acc_t *sc = Scur + i * N, *sp = Sprev + i * N;
                        const acc_t dyi = vdy[i], vi = vv[i], sai = sa[i];
                        acc_t dvi = 0, dsai = 0;
                        for (int64_t j = 0; j < N; ++j) {
                            g[j] += dyi * vr[j];
                            dr[j] += sc[j] * dyi;
                            dvi += g[j] * vk[j];
                            dsai += g[j] * vb[j];
                            dk[j] += g[j] * vi;
                            db[j] += g[j] * sai;
                            dw[j] += g[j] * sp[j];
                        }
                        dv[i] = dvi;
                        dsa[i] = dsai;
                        for (int64_t j = 0; j < N; ++j) {
                            da[j] += dsai * sp[j];
                            g[j] = g[j] * vw[j] + dsai * va[j];
                        }
                    }
                    const int64_t off = ((bi * d.T + t) * d.H + h) * N;
                    for (int64_t n = 0; n < N; ++n) {
                        gr[off + n] = static_cast<scalar_t>(dr[n]);
                        gw[off + n] = static_cast<scalar_t>(dw[n]);
                        gk[off + n] = static_cast<scalar_t>(dk[n]);
                        gv[off + n] = static_cast<scalar_t>(dv[n]);
                        ga[off + n] = static_cast<scalar_t>(da[n]);
                        gb[off + n] = static_cast<scalar_t>(db[n]);
                    }
                }
            }
            std::copy(dS.begin(), dS.end(), gs0 + bh * NN);
        }
    });
}

std::tuple<Tensor, Tensor, Tensor> wkv7_forward_cpu(const Tensor &r, const Tensor &w, const Tensor &k,
                                                    const Tensor &v, const Tensor &a, const Tensor &b,
                                                    const Tensor &s0, int64_t chunk) {
    const Dims d = detail::dims_of(r, "wkv7");
    for (const Tensor *t : {&w, &k, &v, &a, &b})
        TORCH_CHECK(t->sizes() == r.sizes() && t->scalar_type() == r.scalar_type() && t->is_contiguous(),
                    "wkv7: all inputs must be contiguous with the same shape and dtype as r");
    TORCH_CHECK(r.is_contiguous() && s0.is_contiguous(), "wkv7: inputs must be contiguous");
    TORCH_CHECK(s0.sizes() == at::IntArrayRef({d.B, d.H, d.N, d.N}) && s0.scalar_type() == state_type(r),
                "wkv7: state must be [B,H,N,N] in float32 (float64 for float64 inputs)");
    Tensor y = at::empty_like(r);
    Tensor sT = at::empty_like(s0);
    const int64_t NC = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    Tensor chunks = at::empty({d.B, d.H, NC, d.N, d.N}, s0.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, r.scalar_type(), "wkv7_forward_cpu", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        forward_kernel<scalar_t, acc_t>(r, w, k, v, a, b, s0, y, sT, chunks, chunk, d);
    });
    return {y, sT, chunks};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
wkv7_backward_cpu(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &a,
                  const Tensor &b, const Tensor &chunks, const Tensor &dy, const Tensor &ds, int64_t chunk) {
    const Dims d = detail::dims_of(r, "wkv7");
    TORCH_CHECK(chunk > 0, "wkv7_backward: chunk must be positive");
    TORCH_CHECK(dy.sizes() == r.sizes() && dy.is_contiguous() && ds.is_contiguous(), "wkv7_backward: bad gradients");
    std::vector<Tensor> grads;
    for (int i = 0; i < 6; ++i) grads.push_back(at::empty_like(r));
    grads.push_back(at::empty_like(ds));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, r.scalar_type(), "wkv7_backward_cpu", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        backward_kernel<scalar_t, acc_t>(r, w, k, v, a, b, chunks, dy, ds, grads, chunk, d);
    });
    return {grads[0], grads[1], grads[2], grads[3], grads[4], grads[5], grads[6]};
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
