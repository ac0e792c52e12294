// RWKV-6 WKV on the GPU: one thread block per (batch, head), one thread per
// state column (forward) or row (backward), the state in registers. The
// backward needs no stored states: see wkv_cuda.hpp for the dw identity.
#include "gpu_common.cuh"

namespace cdrmix::gpu {

namespace {

using detail::from_f;
using detail::to_f;

// Thread j owns column j of S (key rows i): y_j = sum_i r_i (u_i k_i v_j + S_ij); S_ij <- w_i S_ij + k_i v_j.
template <class T, int N>
__global__ void __launch_bounds__(N) forward_kernel(WkvDims d, const T *__restrict__ r, const T *__restrict__ w,
                                                   const T *__restrict__ k, const T *__restrict__ v,
                                                   const T *__restrict__ u, const float *__restrict__ s0,
                                                   T *__restrict__ y, float *__restrict__ s_final) {
    const int h = blockIdx.x, bi = blockIdx.y, j = threadIdx.x;
    __shared__ float sr[N], sw[N], sk[N], su[N];
    const size_t bh = size_t(bi) * d.H + h;
    su[j] = to_f(u[size_t(h) * N + j]);
    float S[N];
#pragma unroll
    for (int i = 0; i < N; ++i) S[i] = s0[bh * N * N + size_t(i) * N + j];
    // The next step's inputs are loaded while this step computes.
    const size_t stride = size_t(d.H) * N;
    size_t idx = (size_t(bi) * d.T * d.H + h) * N + j;
    T nr{}, nw{}, nk{}, nv{};
    if (d.T > 0) nr = r[idx], nw = w[idx], nk = k[idx], nv = v[idx];
    for (int t = 0; t < d.T; ++t, idx += stride) {
        __syncthreads();
        sr[j] = to_f(nr);
        sw[j] = to_f(nw);
        sk[j] = to_f(nk);
        const float vj = to_f(nv);
        if (t + 1 < d.T) nr = r[idx + stride], nw = w[idx + stride], nk = k[idx + stride], nv = v[idx + stride];
        __syncthreads();
        detail::Sum4 y_sum;
#pragma unroll
        for (int i = 0; i < N; ++i) {
            y_sum.fma(i, sr[i], su[i] * sk[i] * vj + S[i]);
            S[i] = sw[i] * S[i] + sk[i] * vj;
        }
        y[idx] = from_f<T>(y_sum.total());
    }
#pragma unroll
    for (int i = 0; i < N; ++i) s_final[bh * N * N + size_t(i) * N + j] = S[i];
}

// Thread i owns row i (key index i) of S and of G = dL/dS_t, and column i of G
// (value index i) for dv.
template <class T, int N>
__global__ void __launch_bounds__(N)
    backward_kernel(WkvDims d, const T *__restrict__ r, const T *__restrict__ w, const T *__restrict__ k,
                    const T *__restrict__ v, const T *__restrict__ u, const float *__restrict__ s0,
                    const T *__restrict__ dy, const float *__restrict__ ds, T *__restrict__ dr, T *__restrict__ dw,
                    T *__restrict__ dk, T *__restrict__ dv, float *__restrict__ du_partial,
                    float *__restrict__ ds0, float *__restrict__ scratch) {
    const int h = blockIdx.x, bi = blockIdx.y, i = threadIdx.x;
    __shared__ float sr[N], sk[N], sw[N], sv[N], sdy[N], su[N];
    const size_t bh = size_t(bi) * d.H + h;
    const float ui = su[i] = to_f(u[size_t(h) * N + i]);
    float S[N];
#pragma unroll
    for (int j = 0; j < N; ++j) S[j] = s0[bh * N * N + size_t(i) * N + j];

    // Forward: dr, and r * (S_{t-1} dy_t) kept in scratch for the dw recurrence.
    for (int t = 0; t < d.T; ++t) {
        const size_t idx = ((size_t(bi) * d.T + t) * d.H + h) * N + i;
        __syncthreads();
        sv[i] = to_f(v[idx]);
        sdy[i] = to_f(dy[idx]);
        __syncthreads();
        const float ri = to_f(r[idx]), ki = to_f(k[idx]), wi = to_f(w[idx]);
        float drs = 0, vdy = 0;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            drs += S[j] * sdy[j];
            vdy += sv[j] * sdy[j];
            S[j] = wi * S[j] + ki * sv[j];
        }
        dr[idx] = from_f<T>(drs + ui * ki * vdy);
        scratch[idx] = ri * drs;
    }
    // S is now S_{T-1}: Q_{T-1} = rowsum(ds .* S_{T-1}); G starts as ds.
    float G_row[N], G_col[N], q = 0;
#pragma unroll
    for (int j = 0; j < N; ++j) {
        G_row[j] = ds[bh * N * N + size_t(i) * N + j];
        G_col[j] = ds[bh * N * N + size_t(j) * N + i];
        q += G_row[j] * S[j];
    }
    float du = 0;
    for (int t = d.T - 1; t >= 0; --t) {
        const size_t idx = ((size_t(bi) * d.T + t) * d.H + h) * N + i;
        __syncthreads();
        const float ri = sr[i] = to_f(r[idx]);
        const float ki = sk[i] = to_f(k[idx]);
        const float wi = sw[i] = to_f(w[idx]);
        sv[i] = to_f(v[idx]);
        const float dyi = sdy[i] = to_f(dy[idx]);
        __syncthreads();
        float dks = 0, vdy = 0, ruk = 0, dvs = 0;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            dks += G_row[j] * sv[j];
            vdy += sv[j] * sdy[j];
            ruk += sr[j] * su[j] * sk[j];
            dvs += G_col[j] * sk[j];
        }
        const float dlogw = q - ki * dks;
        q = dlogw + scratch[idx];
        dk[idx] = from_f<T>(dks + ri * ui * vdy);
        dv[idx] = from_f<T>(dvs + dyi * ruk);
        dw[idx] = from_f<T>(dlogw / wi);
        du += ri * ki * vdy;
        // dL/dS_{t-1} = diag(w_t) G + r_t dy_t^T.
#pragma unroll
        for (int j = 0; j < N; ++j) {
            G_row[j] = wi * G_row[j] + ri * sdy[j];
            G_col[j] = sw[j] * G_col[j] + sr[j] * dyi;
        }
    }
    du_partial[bh * N + i] = du;
#pragma unroll
    for (int j = 0; j < N; ++j) ds0[bh * N * N + size_t(i) * N + j] = G_row[j];
}

} // namespace

void wkv6_forward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v, const void *u,
                  const float *s0, void *y, float *s_final, cdrmixStream_t stream) {
    if (d.B == 0 || d.H == 0) return;
    detail::dispatch(dt, d.N, "wkv6_forward", [&](auto tag, auto n) {
        using T = decltype(tag);
        constexpr int N = decltype(n)::value;
        forward_kernel<T, N><<<dim3(d.H, d.B), N, 0, stream>>>(
            d, static_cast<const T *>(r), static_cast<const T *>(w), static_cast<const T *>(k),
            static_cast<const T *>(v), static_cast<const T *>(u), s0, static_cast<T *>(y), s_final);
    });
}

void wkv6_backward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v,
                   const void *u, const float *s0, const void *dy, const float *ds, void *dr, void *dw, void *dk,
                   void *dv, float *du_partial, float *ds0, float *scratch, cdrmixStream_t stream) {
    if (d.B == 0 || d.H == 0) return;
    detail::dispatch(dt, d.N, "wkv6_backward", [&](auto tag, auto n) {
        using T = decltype(tag);
        constexpr int N = decltype(n)::value;
        backward_kernel<T, N><<<dim3(d.H, d.B), N, 0, stream>>>(
            d, static_cast<const T *>(r), static_cast<const T *>(w), static_cast<const T *>(k),
            static_cast<const T *>(v), static_cast<const T *>(u), s0, static_cast<const T *>(dy), ds,
            static_cast<T *>(dr), static_cast<T *>(dw), static_cast<T *>(dk), static_cast<T *>(dv), du_partial, ds0,
            scratch);
    });
}

} // namespace cdrmix::gpu
