// RWKV-7 WKV on the GPU, one thread block per (batch, head).
// Forward: each state row is held by P adjacent threads (a "row group", N/P
// columns each, in registers); the inputs travel in blocks of K steps, copied
// in asynchronously while the block computes the previous K from shared memory
// (fetching one step ahead, every step waited for global memory), and the
// saved states leave through shared memory in whole lines.
// Backward: one thread per state row/column (splitting rows measured slower
// there, docs/backends.md), the next step's inputs loaded during this one.
// Derivation of the backward in cdrmix/ops.hpp and wkv7_cpu.cpp.
#include "gpu_common.cuh"

namespace cdrmix::gpu {

namespace {

using detail::from_f;
using detail::copy16_async;
using detail::copy_async_commit;
using detail::copy_async_wait;
using detail::to_f;

// Threads per state row in the forward (measured on an H100 at N = 64 against
// 1 and 4, docs/backends.md), and steps per block of inputs.
template <int N> constexpr int kForwardRowThreads = 2;
constexpr int kStepsPerLoad = 4;

// Shared vectors store column j of thread p's segment at p * (M + 4) + jj: the
// 4-float gap puts the P segments of a warp's same-index loads in different
// banks (with one thread per row every lane reads the same address).
template <int N, int P> struct Layout {
    static constexpr int M = N / P; // columns per thread
    static constexpr int stride = P == 1 ? M : M + 4;
    static constexpr int size = P * stride;
    static_assert(M % 4 == 0, "segments are moved as float4");
    __device__ static int pos(int j) { return (j / M) * stride + j % M; }
};

// Sum over the P threads of a row group (adjacent lanes), result in all of them.
template <int P> __device__ __forceinline__ float group_sum(float x) {
#pragma unroll
    for (int o = 1; o < P; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// The step vectors of one head, K steps at a time: `raw` receives them
// asynchronously as stored (two blocks in flight), `f` holds the current block
// in float in the padded layout. NT vectors of type T, then optionally one of
// float (the backward's S_{t-1} a_t).
template <class T, int N, int P, int NT, bool kFloatVector> struct StepInputs {
    static constexpr int K = kStepsPerLoad, NV = NT + (kFloatVector ? 1 : 0);
    using L = Layout<N, P>;
    static_assert(N * sizeof(T) % 16 == 0, "a vector is copied in 16-byte pieces");
    __align__(16) T raw[2][K][NT][N];
    __align__(16) float raw_f[kFloatVector ? 2 : 1][kFloatVector ? K : 1][kFloatVector ? N : 4];
    __align__(16) float f[K][NV][L::size];

    // Starts copying block c (steps n = cK .. cK+K-1 of the walk; step t = n
    // forwards, T-1-n backwards) into raw[c & 1]. Every thread commits a group.
    __device__ void fetch(int c, const WkvDims &d, int bi, int h, bool backwards, const T *const *src,
                          const float *fsrc) {
        constexpr int per_vec = N * int(sizeof(T)) / 16, per_fvec = N / 4;
        for (int e = threadIdx.x; e < K * NT * per_vec; e += blockDim.x) {
            const int s = e / (NT * per_vec), v = (e / per_vec) % NT, part = e % per_vec, n = c * K + s;
            if (n >= d.T) continue;
            const int t = backwards ? d.T - 1 - n : n;
            const size_t base = ((size_t(bi) * d.T + t) * d.H + h) * N;
            copy16_async(&raw[c & 1][s][v][part * (16 / sizeof(T))], src[v] + base + part * (16 / sizeof(T)));
        }
        if constexpr (kFloatVector)
            for (int e = threadIdx.x; e < K * per_fvec; e += blockDim.x) {
                const int s = e / per_fvec, part = e % per_fvec, n = c * K + s;
                if (n >= d.T) continue;
                const int t = backwards ? d.T - 1 - n : n;
                const size_t base = ((size_t(bi) * d.T + t) * d.H + h) * N;
                copy16_async(&raw_f[c & 1][s][part * 4], fsrc + base + part * 4);
            }
        copy_async_commit();
    }
    // Block c, landed, into `f`. Call between two barriers.
    __device__ void unpack(int c) {
        for (int e = threadIdx.x; e < K * NV * N; e += blockDim.x) {
            const int s = e / (NV * N), v = (e / N) % NV, col = e % N;
            f[s][v][L::pos(col)] = v < NT ? to_f(raw[c & 1][s][v][col]) : raw_f[c & 1][s][col];
        }
    }
};

// Thread (i, p) owns columns p*M .. p*M+M-1 of row i of S. Per step:
// sa_i = S_i. a; S_i. <- S_i. * w + sa_i b + v_i k; y_i = S_i. r.
template <class T, int N, int P>
__global__ void __launch_bounds__(N *P) forward_kernel(WkvDims d, const T *__restrict__ r, const T *__restrict__ w,
                                                      const T *__restrict__ k, const T *__restrict__ v,
                                                      const T *__restrict__ a, const T *__restrict__ b,
                                                      const float *__restrict__ s0, T *__restrict__ y,
                                                      float *__restrict__ s_final, float *__restrict__ states,
                                                      float *__restrict__ sa_out, int chunk) {
    using L = Layout<N, P>;
    using In = StepInputs<T, N, P, 6, false>;
    constexpr int M = L::M, K = In::K;
    enum { R, W, Kv, V, A, B };
    __shared__ In in;
    // The state at a chunk end passes through shared memory so that it reaches
    // global memory in whole lines (row by row from registers it took two
    // thirds of the forward's time).
    __shared__ __align__(16) float tile[N * L::size];
    const int h = blockIdx.x, bi = blockIdx.y, tid = threadIdx.x, i = tid / P, p = tid % P;
    const size_t bh = size_t(bi) * d.H + h;
    const int nchunks = chunk > 0 ? (d.T + chunk - 1) / chunk : 0;
    const T *const src[6] = {r, w, k, v, a, b};

    float S[M];
    const float *s0_row = s0 + bh * N * N + size_t(i) * N + p * M;
#pragma unroll
    for (int jj = 0; jj < M; ++jj) S[jj] = s0_row[jj];
    const int own = L::pos(i), seg = p * L::stride;
    const int nblocks = (d.T + K - 1) / K;
    in.fetch(0, d, bi, h, false, src, nullptr);
    in.fetch(1, d, bi, h, false, src, nullptr);
    for (int c = 0; c < nblocks; ++c) {
        copy_async_wait<1>(); // block c is here; c+1 may still travel
        __syncthreads();
        in.unpack(c);
        __syncthreads();
        in.fetch(c + 2, d, bi, h, false, src, nullptr);
        const int steps = min(K, d.T - c * K);
        for (int s = 0; s < steps; ++s) {
            const int t = c * K + s;
            const size_t base = ((size_t(bi) * d.T + t) * d.H + h) * N;
            const float(*x)[L::size] = in.f[s];
            float sa_part = 0;
#pragma unroll
            for (int jj = 0; jj < M; ++jj) sa_part += S[jj] * x[A][seg + jj];
            const float sai = group_sum<P>(sa_part), vi = x[V][own];
            float y_part = 0;
#pragma unroll
            for (int jj = 0; jj < M; ++jj) {
                S[jj] = S[jj] * x[W][seg + jj] + sai * x[B][seg + jj] + vi * x[Kv][seg + jj];
                y_part += S[jj] * x[R][seg + jj];
            }
            const float yi = group_sum<P>(y_part);
            if (p == 0) y[base + i] = from_f<T>(yi);
            if (!states) continue;
            if (p == P - 1) sa_out[base + i] = sai;
            if ((t + 1) % chunk == 0 || t == d.T - 1) {
                __syncthreads(); // the previous state is out of the tile
#pragma unroll
                for (int q = 0; q < M; q += 4)
                    *reinterpret_cast<float4 *>(&tile[i * L::size + seg + q]) =
                        make_float4(S[q], S[q + 1], S[q + 2], S[q + 3]);
                __syncthreads();
                float *dst = states + (bh * nchunks + t / chunk) * N * N;
                for (int e = 4 * tid; e < N * N; e += 4 * N * P)
                    *reinterpret_cast<float4 *>(dst + e) =
                        *reinterpret_cast<const float4 *>(&tile[(e / N) * L::size + L::pos(e % N)]);
            }
        }
    }
    copy_async_wait<0>();
    float *fin = s_final + bh * N * N + size_t(i) * N + p * M;
#pragma unroll
    for (int jj = 0; jj < M; ++jj) fin[jj] = S[jj];
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
        constexpr int N = decltype(n)::value, P = kForwardRowThreads<N>;
        forward_kernel<T, N, P><<<dim3(d.H, d.B), N * P, 0, stream>>>(
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
