// RWKV-7 WKV on the GPU: one thread block per (batch, head), one thread per
// state row/column, the state in registers and the step's vectors in shared
// memory, the next step's inputs loaded while this one computes. (Measured
// against splitting rows over 2-4 threads and loading inputs in blocks of
// steps: both slower, docs/backends.md.) Derivation of the backward in
// cdrmix/ops.hpp and wkv7_cpu.cpp.
#include "gpu_common.cuh"

namespace cdrmix::gpu {

namespace {

using detail::from_f;
using detail::to_f;

// Thread i owns row i of S. Per step: sa_i = S_i. a; S_i. <- S_i. * w + sa_i b + v_i k; y_i = S_i. r.
template <class T, int N>
__global__ void __launch_bounds__(N) forward_kernel(WkvDims d, const T *__restrict__ r, const T *__restrict__ w,
                                                   const T *__restrict__ k, const T *__restrict__ v,
                                                   const T *__restrict__ a, const T *__restrict__ b,
                                                   const float *__restrict__ s0, T *__restrict__ y,
                                                   float *__restrict__ s_final, float *__restrict__ states,
                                                   float *__restrict__ sa_out, int chunk) {
    const int h = blockIdx.x, bi = blockIdx.y, i = threadIdx.x;
    __shared__ float sr[N], sw[N], sk[N], sa[N], sb[N];
    // A saved state leaves through shared memory, so that it reaches global
    // memory in whole lines: written row by row from registers (a thread per
    // row, rows N floats apart) it took two thirds of the forward's time. Rows
    // are padded by 4 floats so the float4 writes of 8 lanes hit different banks.
    constexpr int kTileStride = N + 4;
    __shared__ __align__(16) float tile[N * kTileStride];
    const size_t bh = size_t(bi) * d.H + h;
    float S[N];
#pragma unroll
    for (int j = 0; j < N; ++j) S[j] = s0[bh * N * N + size_t(i) * N + j];
    const int nchunks = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    // The next step's inputs are loaded while this step computes: the loop is
    // bound by memory latency, not arithmetic.
    const size_t stride = size_t(d.H) * N;
    size_t idx = (size_t(bi) * d.T * d.H + h) * N + i;
    T nr{}, nw{}, nk{}, nv{}, na{}, nb{};
    if (d.T > 0) nr = r[idx], nw = w[idx], nk = k[idx], nv = v[idx], na = a[idx], nb = b[idx];
    for (int t = 0; t < d.T; ++t, idx += stride) {
        __syncthreads();
        sr[i] = to_f(nr);
        sw[i] = to_f(nw);
        sk[i] = to_f(nk);
        sa[i] = to_f(na);
        sb[i] = to_f(nb);
        const float vi = to_f(nv);
        if (t + 1 < d.T) {
            nr = r[idx + stride], nw = w[idx + stride], nk = k[idx + stride];
            nv = v[idx + stride], na = a[idx + stride], nb = b[idx + stride];
        }
        __syncthreads();
        detail::Sum4 sa_sum;
#pragma unroll
        for (int j = 0; j < N; ++j) sa_sum.fma(j, S[j], sa[j]);
        const float sai = sa_sum.total();
        detail::Sum4 y_sum;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            S[j] = S[j] * sw[j] + sai * sb[j] + vi * sk[j];
            y_sum.fma(j, S[j], sr[j]);
        }
        y[idx] = from_f<T>(y_sum.total());
        if (states) {
            sa_out[idx] = sai;
            if ((t + 1) % chunk == 0 || t == d.T - 1) {
                // The previous save left the tile at least one step (two barriers) ago.
#pragma unroll
                for (int q = 0; q < N; q += 4)
                    *reinterpret_cast<float4 *>(&tile[i * kTileStride + q]) =
                        make_float4(S[q], S[q + 1], S[q + 2], S[q + 3]);
                __syncthreads();
                float *dst = states + (bh * nchunks + t / chunk) * N * N;
                for (int e = 4 * i; e < N * N; e += 4 * N)
                    *reinterpret_cast<float4 *>(dst + e) =
                        *reinterpret_cast<const float4 *>(&tile[(e / N) * kTileStride + e % N]);
            }
        }
    }
#pragma unroll
    for (int j = 0; j < N; ++j) s_final[bh * N * N + size_t(i) * N + j] = S[j];
}

// Thread i owns column i of S (ST[j] = S[j][i]) and row and column i of
// G = dL/dS_t (G_row[j] = G[i][j], G_col[j] = G[j][i]), so every reduction is
// within the thread; only dsa is exchanged through shared memory.
template <class T, int N>
__global__ void __launch_bounds__(N)
    backward_kernel(WkvDims d, const T *__restrict__ r, const T *__restrict__ w, const T *__restrict__ k,
                    const T *__restrict__ v, const T *__restrict__ a, const T *__restrict__ b,
                    const float *__restrict__ states, const float *__restrict__ sa_in, const T *__restrict__ dy,
                    const float *__restrict__ ds, T *__restrict__ dr, T *__restrict__ dw, T *__restrict__ dk,
                    T *__restrict__ dv, T *__restrict__ da, T *__restrict__ db, float *__restrict__ ds0, int chunk) {
    const int h = blockIdx.x, bi = blockIdx.y, i = threadIdx.x;
    __shared__ float sr[N], sw[N], sk[N], sv[N], sa[N], sb[N], sdy[N], ssa[N], sdsa[N];
    const size_t bh = size_t(bi) * d.H + h;
    const int nchunks = (d.T + chunk - 1) / chunk;
    float ST[N], G_row[N], G_col[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {
        G_row[j] = ds[bh * N * N + size_t(i) * N + j];
        G_col[j] = ds[bh * N * N + size_t(j) * N + i];
    }
    const size_t stride = size_t(d.H) * N;
    size_t idx = ((size_t(bi) * d.T + (d.T > 0 ? d.T - 1 : 0)) * d.H + h) * N + i;
    T nr{}, nw{}, nk{}, nv{}, na{}, nb{}, ndy{};
    float nsa = 0;
    if (d.T > 0)
        nr = r[idx], nw = w[idx], nk = k[idx], nv = v[idx], na = a[idx], nb = b[idx], ndy = dy[idx], nsa = sa_in[idx];
    for (int t = d.T - 1; t >= 0; --t, idx -= stride) {
        if (t == d.T - 1 || (t + 1) % chunk == 0) {
            const float *src = states + (bh * nchunks + t / chunk) * N * N + i;
#pragma unroll
            for (int j = 0; j < N; ++j) ST[j] = src[size_t(j) * N];
        }
        __syncthreads();
        const float ri = sr[i] = to_f(nr);
        const float wi = sw[i] = to_f(nw);
        const float ki = sk[i] = to_f(nk);
        sv[i] = to_f(nv);
        const float ai = sa[i] = to_f(na);
        const float bi_ = sb[i] = to_f(nb);
        const float dyi = sdy[i] = to_f(ndy);
        ssa[i] = nsa;
        if (t > 0) {
            const size_t p = idx - stride;
            nr = r[p], nw = w[p], nk = k[p], nv = v[p], na = a[p], nb = b[p], ndy = dy[p], nsa = sa_in[p];
        }
        __syncthreads();
        // G = dL/dS_t: add y_t's part, dy r^T.
        detail::Sum4 dr_sum;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            G_row[j] += dyi * sr[j];
            G_col[j] += sdy[j] * ri;
            dr_sum.fma(j, ST[j], sdy[j]);
        }
        const float dri = dr_sum.total();
        // Step the state back to S_{t-1}.
        const float inv_w = 1.0f / wi;
#pragma unroll
        for (int j = 0; j < N; ++j) ST[j] = (ST[j] - ssa[j] * bi_ - sv[j] * ki) * inv_w;
        float dvi = 0, dsai = 0, dki = 0, dbi = 0, dwi = 0;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            dvi += G_row[j] * sk[j];
            dsai += G_row[j] * sb[j];
            dki += G_col[j] * sv[j];
            dbi += G_col[j] * ssa[j];
            dwi += G_col[j] * ST[j];
        }
        sdsa[i] = dsai;
        __syncthreads();
        detail::Sum4 da_sum;
#pragma unroll
        for (int j = 0; j < N; ++j) da_sum.fma(j, sdsa[j], ST[j]);
        const float dai = da_sum.total();
        // dL/dS_{t-1} = G diag(w) + dsa a^T.
#pragma unroll
        for (int j = 0; j < N; ++j) {
            G_row[j] = G_row[j] * sw[j] + dsai * sa[j];
            G_col[j] = G_col[j] * wi + sdsa[j] * ai;
        }
        dr[idx] = from_f<T>(dri);
        dw[idx] = from_f<T>(dwi);
        dk[idx] = from_f<T>(dki);
        dv[idx] = from_f<T>(dvi);
        da[idx] = from_f<T>(dai);
        db[idx] = from_f<T>(dbi);
    }
#pragma unroll
    for (int j = 0; j < N; ++j) ds0[bh * N * N + size_t(i) * N + j] = G_row[j];
}

} // namespace

bool wkv_head_size_supported(int N) { return N == 16 || N == 32 || N == 64; }

void wkv7_forward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v, const void *a,
                  const void *b, const float *s0, void *y, float *s_final, float *states, float *sa, int chunk,
                  cdrmixStream_t stream) {
    if (d.B == 0 || d.H == 0) return;
    detail::dispatch(dt, d.N, "wkv7_forward", [&](auto tag, auto n) {
        using T = decltype(tag);
        constexpr int N = decltype(n)::value;
        forward_kernel<T, N><<<dim3(d.H, d.B), N, 0, stream>>>(
            d, static_cast<const T *>(r), static_cast<const T *>(w), static_cast<const T *>(k),
            static_cast<const T *>(v), static_cast<const T *>(a), static_cast<const T *>(b), s0, static_cast<T *>(y),
            s_final, states, sa, chunk);
    });
}

void wkv7_backward(DType dt, WkvDims d, const void *r, const void *w, const void *k, const void *v,
                   const void *a, const void *b, const float *states, const float *sa, const void *dy,
                   const float *ds, void *dr, void *dw, void *dk, void *dv, void *da, void *db, float *ds0,
                   int chunk, cdrmixStream_t stream) {
    if (d.B == 0 || d.H == 0) return;
    detail::dispatch(dt, d.N, "wkv7_backward", [&](auto tag, auto n) {
        using T = decltype(tag);
        constexpr int N = decltype(n)::value;
        backward_kernel<T, N><<<dim3(d.H, d.B), N, 0, stream>>>(
            d, static_cast<const T *>(r), static_cast<const T *>(w), static_cast<const T *>(k),
            static_cast<const T *>(v), static_cast<const T *>(a), static_cast<const T *>(b), states, sa,
            static_cast<const T *>(dy), ds, static_cast<T *>(dr), static_cast<T *>(dw), static_cast<T *>(dk),
            static_cast<T *>(dv), static_cast<T *>(da), static_cast<T *>(db), ds0, chunk);
    });
}

} // namespace cdrmix::gpu
