// RWKV-7 WKV in chunked matrix form (see wkv7_chunked.hpp). Like
// wkv_head_kernels.cpp, this file is compiled once per instruction set (its
// functions in the namespace CDRMIX_WKV_CHUNKED_NS) and includes no library
// header, so no inline function built for AVX-512 can reach older CPUs; the
// set's own recurrent kernels run the chunks the matrix form does not.
//
// Per step, with S[i][j] (i: value index, j: key index):
//   u_t = S_{t-1} a_t;  S_t = S_{t-1} diag(w_t) + u_t b_t^T + v_t k_t^T;  y_t = S_t r_t.
// Within a chunk starting from state S (rows below are steps t = 0..L-1 of the
// chunk), let E_t = w_0 * ... * w_t (elementwise; E_{-1} = 1) and E_L = E_{L-1}.
// Unrolling the diagonal decay,
//   S_t = S diag(E_t) + sum_{s<=t} (u_s b_s^T + v_s k_s^T) diag(E_t / E_s),
// so with the scaled rows
//   A~_t = a_t E_{t-1}, R~_t = r_t E_t, B^_s = b_s / E_s, K^_s = k_s / E_s,
//   B-_s = b_s E_L / E_s, K-_s = k_s E_L / E_s
// and the masked L x L products Mab = A~ B^T, Mak = A~ K^T (s < t) and
// Mrb = R~ B^T, Mrk = R~ K^T (s <= t), one chunk is
//   U = Mab U + A~ S^T + Mak V          (so U = (I - Mab)^-1 (A~ S^T + Mak V))
//   Y = R~ S^T + Mrb U + Mrk V
//   S' = S diag(E_L) + U^T B- + V^T K-.
// Stacking X = [A~; R~], Kh = [B^; K^], Bar = [B-; K-], UV = [U; V] makes M = X Kh^T
// one GEMM holding all four products. Every product with S is an L x N x N
// GEMM; the rest is L x L x N. The backward pass is the reverse-mode derivative
// of these lines (in backward_chunk), with the decays' gradient through log E:
// each scaled row x~ = x E^{+-1} adds +-dx~ .* x~ to d log E, and
// d log w_t = sum_{t' >= t} d log E_t', so dw = d log w / w.
//
// E_t / E_s is formed as a quotient, which needs E to stay well inside the
// floating-point range: a chunk whose E leaves [kMinDecay, 1 / kMinDecay] runs
// through the recurrent kernels. RWKV-7's decay, exp(-e^-0.5 sigmoid(.)), is at
// least 0.545, so chunks of 16 steps keep E above 6e-5 and never fall back.
#include "wkv7_chunked.hpp"

#ifndef CDRMIX_WKV_CHUNKED_NS
#error "compile with -DCDRMIX_WKV_CHUNKED_NS=chunked_<isa>"
#endif

#define CDRMIX_SIMD _Pragma("omp simd")

// Fortran BLAS (OpenBLAS here, the library LibTorch uses); 32-bit integers.
extern "C" {
void sgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const float *alpha,
            const float *a, const int *lda, const float *b, const int *ldb, const float *beta, float *c,
            const int *ldc);
void dgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const double *alpha,
            const double *a, const int *lda, const double *b, const int *ldb, const double *beta, double *c,
            const int *ldc);
}

namespace cdrmix::ops::cpu::kernels::CDRMIX_WKV_CHUNKED_NS {

namespace {

// Masked-out products reach 1 / kMinDecay times the inputs: they must stay finite.
template <class T> constexpr T kMinDecay = T(1e-15);
template <> constexpr double kMinDecay<double> = 1e-150;

// A chunk this short costs more in GEMM calls than its recurrent steps do.
constexpr int64_t kMinChunkSteps = 4;

void blas_gemm(char ta, char tb, int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc) {
    const float one = 1;
    sgemm_(&ta, &tb, &m, &n, &k, &one, A, &lda, B, &ldb, &beta, C, &ldc);
}

void blas_gemm(char ta, char tb, int m, int n, int k, const double *A, int lda, const double *B, int ldb,
               double beta, double *C, int ldc) {
    const double one = 1;
    dgemm_(&ta, &tb, &m, &n, &k, &one, A, &lda, B, &ldb, &beta, C, &ldc);
}

// Row-major C (m x n) = op(A) op(B) + beta C. BLAS is column-major, where the
// row-major C is C^T = op(B)^T op(A)^T: the operands swap, the flags stay.
template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T *A, int64_t lda, const T *B, int64_t ldb, T beta,
          T *C, int64_t ldc) {
    blas_gemm(tb ? 'T' : 'N', ta ? 'T' : 'N', int(n), int(m), int(k), B, int(ldb), A, int(lda), beta, C, int(ldc));
}

template <class T> void copy_n(const T *src, int64_t n, T *dst) {
    CDRMIX_SIMD
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

template <class T> void zero_n(T *dst, int64_t n) {
    CDRMIX_SIMD
    for (int64_t i = 0; i < n; ++i) dst[i] = T(0);
}

int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// Carves one scratch buffer into named arrays.
template <class T> struct Arena {
    T *p;
    T *take(int64_t n) {
        T *out = p;
        p += n;
        return out;
    }
};

// One chunk's scaled rows (each 2Lc x N holds the two stacked Lc x N halves
// named in the file comment) and their product M (2Lc x 2Lc).
template <class T> struct Chunk {
    int64_t Lc, N;
    T *E;   // Lc x N cumulative decay; its last row is E_L
    T *X;   // [A~; R~]
    T *Kh;  // [B^; K^]
    T *Bar; // [B-; K-]
    T *UV;  // [U; V]
    T *M;   // [Mab Mak; Mrb Mrk]
    T *inv; // (I - Mab)^-1, Lc x Lc
    T *Z;   // A~ S^T + Mak V, Lc x N
    T *ones; // N ones: E before the chunk's first step
    const T *EL() const { return E + (Lc - 1) * N; }

    Chunk(Arena<T> &a, int64_t L, int64_t n)
        : Lc(L), N(n), E(a.take(L * n)), X(a.take(2 * L * n)), Kh(a.take(2 * L * n)), Bar(a.take(2 * L * n)),
          UV(a.take(2 * L * n)), M(a.take(4 * L * L)), inv(a.take(L * L)), Z(a.take(L * n)), ones(a.take(n)) {
        CDRMIX_SIMD
        for (int64_t j = 0; j < n; ++j) ones[j] = T(1);
    }
};

// Gradients of a chunk's stacked arrays, named after what they differentiate.
template <class T> struct ChunkGrads {
    T *dXin;  // [dZ; dY]: gradients of A~ S^T + Mak V (before the substitution) and of Y
    T *dUV, *dM, *dX, *dKh, *dBar;
    T *dlogE;  // Lc x N
    T *colsum; // N: column sums of S .* dS'
    T *dlogEL; // N

    ChunkGrads(Arena<T> &a, int64_t L, int64_t n)
        : dXin(a.take(2 * L * n)), dUV(a.take(2 * L * n)), dM(a.take(4 * L * L)), dX(a.take(2 * L * n)),
          dKh(a.take(2 * L * n)), dBar(a.take(2 * L * n)), dlogE(a.take(L * n)), colsum(a.take(n)), dlogEL(a.take(n)) {}
};

template <class T> Wkv7Head<T> steps_of(const Wkv7Head<T> &in, int64_t t0, int64_t Lc) {
    const int64_t o = t0 * in.stride;
    return {in.r + o, in.w + o, in.k + o, in.v + o, in.a + o, in.b + o, Lc, in.stride, in.N};
}

// Fills the chunk's scaled rows from steps t0 .. t0 + Lc - 1; false (and the
// chunk goes to the recurrent kernels) when the cumulative decay is out of range.
template <class T> bool prepare_chunk(const Wkv7Head<T> &in, int64_t t0, Chunk<T> &c) {
    const int64_t Lc = c.Lc, N = c.N;
    for (int64_t t = 0; t < Lc; ++t) {
        const T *w = in.w + (t0 + t) * in.stride, *prev = t ? c.E + (t - 1) * N : nullptr;
        T *E = c.E + t * N;
        if (prev) {
            CDRMIX_SIMD
            for (int64_t j = 0; j < N; ++j) E[j] = prev[j] * w[j];
        } else {
            copy_n(w, N, E);
        }
    }
    T lo = c.E[0], hi = c.E[0], sum = 0;
    _Pragma("omp simd reduction(min : lo) reduction(max : hi) reduction(+ : sum)")
    for (int64_t i = 0; i < Lc * N; ++i) {
        lo = lo < c.E[i] ? lo : c.E[i];
        hi = hi > c.E[i] ? hi : c.E[i];
        sum += c.E[i];
    }
    if (!(lo >= kMinDecay<T> && hi <= 1 / kMinDecay<T> && sum == sum)) return false; // sum == sum: no NaN
    const T *EL = c.EL();
    for (int64_t t = 0; t < Lc; ++t) {
        const int64_t o = (t0 + t) * in.stride, top = t * N, bottom = (Lc + t) * N;
        const T *E = c.E + t * N, *prev = t ? c.E + (t - 1) * N : c.ones;
        CDRMIX_SIMD
        for (int64_t j = 0; j < N; ++j) {
            const T inv = 1 / E[j], to_end = EL[j] * inv;
            c.X[top + j] = in.a[o + j] * prev[j];
            c.X[bottom + j] = in.r[o + j] * E[j];
            c.Kh[top + j] = in.b[o + j] * inv;
            c.Kh[bottom + j] = in.k[o + j] * inv;
            c.Bar[top + j] = in.b[o + j] * to_end;
            c.Bar[bottom + j] = in.k[o + j] * to_end;
            c.UV[bottom + j] = in.v[o + j];
        }
    }
    return true;
}

// Zeroes what causality excludes in a 2Lc x 2Lc [top; bottom] product: s >= t
// in the top rows (u_t reads S_{t-1}), s > t in the bottom rows (y_t reads S_t).
template <class T> void mask_causal(T *M, int64_t Lc) {
    const int64_t L2 = 2 * Lc;
    for (int64_t i = 0; i < L2; ++i) {
        const int64_t t = i % Lc, first = i < Lc ? t : t + 1;
        for (int64_t half = 0; half < 2; ++half)
            zero_n(M + i * L2 + half * Lc + first, Lc - first);
    }
}

// T = (I - Mab)^-1 (Lc x Lc, unit lower-triangular), row by row: row t of
// (I - Mab) T = I reads T_t = e_t + sum_{s<t} Mab[t][s] T_s. A GEMM with T then
// does the triangular solves: a BLAS trsm call costs several times as much at this size.
template <class T> void invert_unit_lower(const T *M, int64_t ldm, int64_t Lc, T *inv) {
    for (int64_t t = 0; t < Lc; ++t) {
        T *row = inv + t * Lc;
        zero_n(row, Lc);
        row[t] = T(1);
        for (int64_t s = 0; s < t; ++s) {
            const T m = M[t * ldm + s], *from = inv + s * Lc;
            CDRMIX_SIMD
            for (int64_t q = 0; q < Lc; ++q) row[q] += m * from[q];
        }
    }
}

// M, then U = Mab U + A~ S^T + Mak V, that is U = (I - Mab)^-1 Z with
// Z = A~ S^T + Mak V.
template <class T> void solve_u(const Chunk<T> &c, const T *S) {
    const int64_t Lc = c.Lc, N = c.N, L2 = 2 * Lc;
    gemm<T>(false, true, L2, L2, N, c.X, N, c.Kh, N, 0, c.M, L2);
    mask_causal(c.M, Lc);
    invert_unit_lower(c.M, L2, Lc, c.inv);
    gemm<T>(false, true, Lc, N, N, c.X, N, S, N, 0, c.Z, N);
    gemm<T>(false, false, Lc, N, Lc, c.M + Lc, L2, c.UV + Lc * N, N, 1, c.Z, N);
    gemm<T>(false, false, Lc, N, Lc, c.inv, Lc, c.Z, N, 0, c.UV, N);
}

template <class T> void scale_columns(T *S, const T *scale, int64_t N) {
    for (int64_t i = 0; i < N; ++i) {
        CDRMIX_SIMD
        for (int64_t j = 0; j < N; ++j) S[i * N + j] *= scale[j];
    }
}

// y rows (stride apart) of the chunk, and S advanced to the chunk's end.
template <class T> void forward_chunk(const Chunk<T> &c, T *S, T *y, int64_t stride) {
    const int64_t Lc = c.Lc, N = c.N, L2 = 2 * Lc;
    solve_u(c, S);
    gemm<T>(false, true, Lc, N, N, c.X + Lc * N, N, S, N, 0, y, stride);
    gemm<T>(false, false, Lc, N, L2, c.M + Lc * L2, L2, c.UV, N, 1, y, stride);
    scale_columns(S, c.EL(), N);
    gemm<T>(true, false, N, N, L2, c.UV, N, c.Bar, N, 1, S, N);
}

// dS holds the gradient of the chunk's final state on entry and of its initial
// state S on exit; fills the stacked gradients in d.
template <class T> void backward_chunk(const Chunk<T> &c, const ChunkGrads<T> &d, const T *S, const T *dy,
                                       int64_t stride, T *dS) {
    const int64_t Lc = c.Lc, N = c.N, L2 = 2 * Lc;
    solve_u(c, S);
    T *dZ = d.dXin, *dY = d.dXin + Lc * N;
    for (int64_t t = 0; t < Lc; ++t) copy_n(dy + t * stride, N, dY + t * N);
    // What reads dS' (S' = S diag(E_L) + U^T B- + V^T K-).
    gemm<T>(false, true, L2, N, N, c.Bar, N, dS, N, 0, d.dUV, N);
    gemm<T>(false, false, L2, N, N, c.UV, N, dS, N, 0, d.dBar, N);
    zero_n(d.colsum, N);
    for (int64_t i = 0; i < N; ++i) {
        CDRMIX_SIMD
        for (int64_t j = 0; j < N; ++j) d.colsum[j] += S[i * N + j] * dS[i * N + j];
    }
    // Y = R~ S^T + Mrb U + Mrk V.
    gemm<T>(true, false, L2, N, Lc, c.M + Lc * L2, L2, dY, N, 1, d.dUV, N);
    // U = (I - Mab)^-1 Z: dZ = (I - Mab)^-T dU.
    gemm<T>(true, false, Lc, N, Lc, c.inv, Lc, d.dUV, N, 0, dZ, N);
    gemm<T>(true, false, Lc, N, Lc, c.M + Lc, L2, dZ, N, 1, d.dUV + Lc * N, N);
    // M = X Kh^T, masked: dM = [dZ; dY] [U; V]^T, masked alike.
    gemm<T>(false, true, L2, L2, N, d.dXin, N, c.UV, N, 0, d.dM, L2);
    mask_causal(d.dM, Lc);
    gemm<T>(false, false, L2, N, L2, d.dM, L2, c.Kh, N, 0, d.dX, N);
    gemm<T>(false, false, L2, N, N, d.dXin, N, S, N, 1, d.dX, N);
    gemm<T>(true, false, L2, N, L2, d.dM, L2, c.X, N, 0, d.dKh, N);
    scale_columns(dS, c.EL(), N);
    gemm<T>(true, false, N, N, L2, d.dXin, N, c.X, N, 1, dS, N);
}

// The inputs' gradients from the stacked ones (rows t0 .. t0 + Lc - 1 of g).
template <class T>
void input_grads(const Wkv7Head<T> &in, int64_t t0, const Chunk<T> &c, const ChunkGrads<T> &d, const Wkv7Grads<T> &g) {
    const int64_t Lc = c.Lc, N = c.N;
    const T *EL = c.EL();
    CDRMIX_SIMD
    for (int64_t j = 0; j < N; ++j) d.dlogEL[j] = d.colsum[j] * EL[j];
    for (int64_t t = 0; t < Lc; ++t) {
        const int64_t o = (t0 + t) * in.stride, top = t * N, bottom = (Lc + t) * N, next = (t + 1) * N;
        const T *E = c.E + t * N, *prev = t ? c.E + (t - 1) * N : c.ones;
        const bool last = t + 1 == Lc;
        T *dlogE = d.dlogE + t * N;
        CDRMIX_SIMD
        for (int64_t j = 0; j < N; ++j) {
            const T dA = d.dX[top + j], dR = d.dX[bottom + j], dBh = d.dKh[top + j], dKh = d.dKh[bottom + j];
            const T dBb = d.dBar[top + j], dKb = d.dBar[bottom + j];
            const T inv = 1 / E[j];
            g.da[o + j] = dA * prev[j];
            g.dr[o + j] = dR * E[j];
            g.db[o + j] = (dBh + EL[j] * dBb) * inv;
            g.dk[o + j] = (dKh + EL[j] * dKb) * inv;
            g.dv[o + j] = d.dUV[bottom + j];
            const T to_end = dBb * c.Bar[top + j] + dKb * c.Bar[bottom + j];
            d.dlogEL[j] += to_end;
            const T from_next = last ? T(0) : d.dX[next + j] * c.X[next + j]; // A~_{t+1} holds E_t
            dlogE[j] = dR * c.X[bottom + j] - dBh * c.Kh[top + j] - dKh * c.Kh[bottom + j] - to_end + from_next;
        }
    }
    // log E_t = sum_{t' <= t} log w_t', and E_L is E of the last step.
    T *acc = d.dlogEL;
    for (int64_t t = Lc - 1; t >= 0; --t) {
        const int64_t o = (t0 + t) * in.stride;
        CDRMIX_SIMD
        for (int64_t j = 0; j < N; ++j) {
            acc[j] += d.dlogE[t * N + j];
            g.dw[o + j] = acc[j] / in.w[o + j];
        }
    }
}

template <class T> Wkv7Grads<T> grads_from(const Wkv7Grads<T> &g, int64_t o) {
    return {g.dr + o, g.dw + o, g.dk + o, g.dv + o, g.da + o, g.db + o};
}

} // namespace

template <class T>
void wkv7_forward(const WkvKernels<T> &self, const Wkv7Head<T> &in, T *S, T *y, T *chunks, int64_t L,
                  T *work) {
    const int64_t N = in.N, NN = N * N;
    for (int64_t t0 = 0, c = 0; t0 < in.steps; t0 += L, ++c) {
        const int64_t Lc = min_i64(L, in.steps - t0);
        if (chunks) copy_n(S, NN, chunks + c * NN);
        Arena<T> arena{work};
        Chunk<T> ch(arena, Lc, N);
        if (Lc >= kMinChunkSteps && prepare_chunk(in, t0, ch))
            forward_chunk(ch, S, y + t0 * in.stride, in.stride);
        else
            self.wkv7_forward(steps_of(in, t0, Lc), S, y + t0 * in.stride, nullptr, 0);
    }
}

template <class T>
void wkv7_backward(const WkvKernels<T> &self, const Wkv7Head<T> &in, const T *chunks, int64_t L,
                   const T *dy, T *dS, const Wkv7Grads<T> &g, T *work) {
    const int64_t N = in.N, NN = N * N, num_chunks = (in.steps + L - 1) / L;
    T *recurrent_work = work + chunked::chunk_scratch(N, L) + chunked::chunk_grad_scratch(N, L);
    for (int64_t c = num_chunks - 1; c >= 0; --c) {
        const int64_t t0 = c * L, Lc = min_i64(L, in.steps - t0), o = t0 * in.stride;
        Arena<T> arena{work};
        Chunk<T> ch(arena, Lc, N);
        ChunkGrads<T> d(arena, Lc, N);
        if (Lc >= kMinChunkSteps && prepare_chunk(in, t0, ch)) {
            backward_chunk(ch, d, chunks + c * NN, dy + o, in.stride, dS);
            input_grads(in, t0, ch, d, g);
        } else {
            self.wkv7_backward(steps_of(in, t0, Lc), chunks + c * NN, L, dy + o, dS, grads_from(g, o),
                                   recurrent_work);
        }
    }
}

template void wkv7_forward<float>(const WkvKernels<float> &, const Wkv7Head<float> &, float *, float *,
                                  float *, int64_t, float *);
template void wkv7_forward<double>(const WkvKernels<double> &, const Wkv7Head<double> &, double *, double *,
                                   double *, int64_t, double *);
template void wkv7_backward<float>(const WkvKernels<float> &, const Wkv7Head<float> &, const float *, int64_t,
                                   const float *, float *, const Wkv7Grads<float> &, float *);
template void wkv7_backward<double>(const WkvKernels<double> &, const Wkv7Head<double> &, const double *,
                                    int64_t, const double *, double *, const Wkv7Grads<double> &, double *);

} // namespace cdrmix::ops::cpu::kernels::CDRMIX_WKV_CHUNKED_NS
