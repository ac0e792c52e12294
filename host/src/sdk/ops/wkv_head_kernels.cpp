// The WKV head kernels (see wkv_head_kernels.hpp). This file is compiled once
// per instruction set with CDRMIX_WKV_SET naming the function that returns its
// KernelSet, CDRMIX_WKV_ISA its name and CDRMIX_WKV_CHUNKED_NS the namespace of
// the same set's chunked WKV-7 (wkv7_chunked.cpp). Everything else is in an anonymous
// namespace and no library header but the intrinsics is included, so no inline function compiled
// for AVX-512 here can be merged by the linker into code meant for older CPUs.
//
// Every inner loop is a contiguous sweep over one state row with independent
// lanes (`omp simd`, reductions declared), which the compiler vectorises for the
// instruction set at hand; the state (N x N, 16 KB at N = 64) stays in L1.
//
// RWKV-7, state S[i][j] (i: value index, j: key index), per step:
//   sa = S a;  S <- S diag(w) + sa b^T + v k^T;  y = S r
// each row i needing only row i, so one sweep per row does all three. Backward,
// with G = dL/dS_t and S_{t-1}, S_t recomputed from the chunk's checkpoint:
//   G += dy r^T;  dr = S_t^T dy;  dv = G k;  dsa = G b;  dk = G^T v;
//   db = G^T sa;  dw = colsum(G .* S_{t-1});  da = S_{t-1}^T dsa;
//   G <- G diag(w) + dsa a^T
//
// RWKV-6, state S[i][j] (i: key index, j: value index), per step:
//   y = (r.(u*k)) v + S_{t-1}^T r;  S_t = diag(w) S_{t-1} + k v^T
// and backward, with c = v.dy:
//   dr_i = (S_{t-1} dy)_i + u_i k_i c;  dk_i = (G v)_i + r_i u_i c;
//   dv = G^T k + dy (r.(u*k));  dw_i = sum_j G[i][j] S_{t-1}[i][j];
//   du_i += r_i k_i c;  G <- diag(w) G + r dy^T
#include "wkv7_chunked.hpp"
#include "wkv_head_kernels.hpp"

#include <immintrin.h>

#if !defined(CDRMIX_WKV_SET) || !defined(CDRMIX_WKV_CHUNKED_NS)
#error "compile with -DCDRMIX_WKV_SET=kernels_<isa> -DCDRMIX_WKV_ISA=\"<isa>\" -DCDRMIX_WKV_CHUNKED_NS=chunked_<isa>"
#endif

// Loops without reductions are left to the vectoriser (`omp simd`); loops with
// reductions use explicit vectors (GCC's vector extensions, as wide as the
// instruction set allows): GCC vectorises `omp simd` reductions through memory.
#define CDRMIX_SIMD _Pragma("omp simd")

namespace cdrmix::ops::cpu::kernels {

namespace {

template <class T> void copy_n(const T *src, int64_t n, T *dst) {
    CDRMIX_SIMD
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}


int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

// Horizontal sums per width (the intrinsics are always-inline: nothing out of line).
#if defined(__AVX512F__)
inline float reduce_add(__m512 v) { return _mm512_reduce_add_ps(v); }
inline double reduce_add(__m512d v) { return _mm512_reduce_add_pd(v); }
#elif defined(__AVX2__)
inline float reduce_add(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}
inline double reduce_add(__m256d v) {
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
}
#else
inline float reduce_add(__m128 v) {
    __m128 x = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
}
inline double reduce_add(__m128d v) { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
#endif

// L lanes of T; entries past the last whole vector of a row go through scalar tails.
template <class T> struct Lanes {
    typedef T vec __attribute__((vector_size(kVectorBytes)));
    static constexpr int64_t L = kVectorBytes / sizeof(T);
    static vec load(const T *p) {
        vec v;
        __builtin_memcpy(&v, p, sizeof v);
        return v;
    }
    static void store(T *p, vec v) { __builtin_memcpy(p, &v, sizeof v); }
    static vec splat(T x) { return vec{} + x; }
    // Halving the vector each time: log2(L) dependent adds rather than L.
    static T sum(vec v) { return reduce_add(v); }
    static int64_t whole(int64_t N) { return N - N % L; } // entries covered by whole vectors
};

// Not a memset: for a few hundred bytes, `rep stos` is slower than vector stores.
template <class T> void zero_n(T *dst, int64_t n) {
    using V = Lanes<T>;
    const int64_t nv = V::whole(n);
    for (int64_t i = 0; i < nv; i += V::L) V::store(dst + i, V::splat(0));
    for (int64_t i = nv; i < n; ++i) dst[i] = T(0);
}

template <class T> T dot(const T *x, const T *y, int64_t N) {
    using V = Lanes<T>;
    typename V::vec acc = V::splat(0);
    const int64_t Nv = V::whole(N);
    for (int64_t j = 0; j < Nv; j += V::L) acc += V::load(x + j) * V::load(y + j);
    T s = V::sum(acc);
    for (int64_t j = Nv; j < N; ++j) s += x[j] * y[j];
    return s;
}

// ---- RWKV-7 ----

// One step from Sin to Sout (which may be the same buffer). Writes y when r is
// given and sa = S_{t-1} a when sa is given.
template <class T, int64_t NT>
void wkv7_step(const T *Sin, T *Sout, const T *r, const T *w, const T *k, const T *v, const T *a, const T *b, T *y,
               T *sa_out, int64_t n) {
    using V = Lanes<T>;
    const int64_t N = NT ? NT : n;
    const int64_t Nv = V::whole(N);
    for (int64_t i = 0; i < N; ++i) {
        const T *in = Sin + i * N;
        T *out = Sout + i * N;
        const T sa = dot(in, a, N), vi = v[i];
        const auto sav = V::splat(sa), viv = V::splat(vi);
        auto yacc = V::splat(0);
        for (int64_t j = 0; j < Nv; j += V::L) {
            const auto s = V::load(in + j) * V::load(w + j) + sav * V::load(b + j) + viv * V::load(k + j);
            V::store(out + j, s);
            if (r) yacc += s * V::load(r + j);
        }
        T yi = V::sum(yacc);
        for (int64_t j = Nv; j < N; ++j) {
            const T s = in[j] * w[j] + sa * b[j] + vi * k[j];
            out[j] = s;
            if (r) yi += s * r[j];
        }
        if (r) y[i] = yi;
        if (sa_out) sa_out[i] = sa;
    }
}

template <class T, int64_t NT> void wkv7_forward(const Wkv7Head<T> &in, T *S, T *y, T *chunks, int64_t chunk) {
    const int64_t N = NT ? NT : in.N, NN = N * N;
    for (int64_t t = 0; t < in.steps; ++t) {
        if (chunk > 0 && t % chunk == 0) copy_n(S, NN, chunks + (t / chunk) * NN);
        const int64_t o = t * in.stride;
        wkv7_step<T, NT>(S, S, in.r + o, in.w + o, in.k + o, in.v + o, in.a + o, in.b + o, y + o,
                  static_cast<T *>(nullptr), N);
    }
}

// One step's vectors and the column sums the backward pass accumulates over rows.
template <class T> struct Wkv7StepVectors {
    const T *r, *w, *k, *a, *b;
    T *dr, *dk, *db, *dw, *da;
};

// The backward step for R consecutive rows of G (gradient of S_t on entry, of
// S_{t-1} on exit): everything that needs G after the dy r^T term and before
// the decay, then the decay and the a-term once dsa of each row is known.
template <class T, int R>
void wkv7_grad_rows(const Wkv7StepVectors<T> &s, T *G, const T *Scur, const T *Sprev, const T *dy, const T *v,
                    const T *sa, T *dv_out, int64_t N) {
    using V = Lanes<T>;
    using vec = typename V::vec;
    const int64_t Nv = V::whole(N);
    vec dyv[R], viv[R], saiv[R], dvv[R], dsav[R];
    for (int q = 0; q < R; ++q) {
        dyv[q] = V::splat(dy[q]);
        viv[q] = V::splat(v[q]);
        saiv[q] = V::splat(sa[q]);
        dvv[q] = V::splat(0);
        dsav[q] = V::splat(0);
    }
    for (int64_t j = 0; j < Nv; j += V::L) {
        const vec rj = V::load(s.r + j), kj = V::load(s.k + j), bj = V::load(s.b + j);
        vec dr = V::load(s.dr + j), dk = V::load(s.dk + j), db = V::load(s.db + j), dw = V::load(s.dw + j);
        for (int q = 0; q < R; ++q) {
            T *gq = G + q * N;
            const vec gj = V::load(gq + j) + dyv[q] * rj;
            V::store(gq + j, gj);
            dr += V::load(Scur + q * N + j) * dyv[q];
            dvv[q] += gj * kj;
            dsav[q] += gj * bj;
            dk += gj * viv[q];
            db += gj * saiv[q];
            dw += gj * V::load(Sprev + q * N + j);
        }
        V::store(s.dr + j, dr);
        V::store(s.dk + j, dk);
        V::store(s.db + j, db);
        V::store(s.dw + j, dw);
    }
    T dsa[R];
    for (int q = 0; q < R; ++q) {
        T *gq = G + q * N;
        const T *sc = Scur + q * N, *sp = Sprev + q * N;
        T dvi = V::sum(dvv[q]), dsai = V::sum(dsav[q]);
        for (int64_t j = Nv; j < N; ++j) {
            const T gj = gq[j] + dy[q] * s.r[j];
            gq[j] = gj;
            s.dr[j] += sc[j] * dy[q];
            dvi += gj * s.k[j];
            dsai += gj * s.b[j];
            s.dk[j] += gj * v[q];
            s.db[j] += gj * sa[q];
            s.dw[j] += gj * sp[j];
        }
        dv_out[q] = dvi;
        dsa[q] = dsai;
    }
    CDRMIX_SIMD
    for (int64_t j = 0; j < N; ++j) {
        T da = s.da[j];
        for (int q = 0; q < R; ++q) {
            da += dsa[q] * Sprev[q * N + j];
            G[q * N + j] = G[q * N + j] * s.w[j] + dsa[q] * s.a[j];
        }
        s.da[j] = da;
    }
}

// Workspace: chunk + 1 states, chunk sa vectors, six N-vectors.
template <class T, int64_t NT>
void wkv7_backward(const Wkv7Head<T> &in, const T *chunks, int64_t chunk, const T *dy, T *G, const Wkv7Grads<T> &g,
                   T *work) {
    const int64_t N = NT ? NT : in.N, NN = N * N;
    T *states = work, *sas = states + (chunk + 1) * NN;
    T *dr = sas + chunk * N, *dk = dr + N, *db = dk + N, *dw = db + N, *da = dw + N;
    const int64_t num_chunks = (in.steps + chunk - 1) / chunk;
    for (int64_t c = num_chunks - 1; c >= 0; --c) {
        const int64_t t0 = c * chunk, t1 = min_i64(in.steps, t0 + chunk);
        copy_n(chunks + c * NN, NN, states);
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t o = t * in.stride;
            wkv7_step<T, NT>(states + (t - t0) * NN, states + (t - t0 + 1) * NN, static_cast<const T *>(nullptr), in.w + o,
                      in.k + o, in.v + o, in.a + o, in.b + o, static_cast<T *>(nullptr), sas + (t - t0) * N, N);
        }
        for (int64_t t = t1 - 1; t >= t0; --t) {
            const int64_t o = t * in.stride;
            const T *r = in.r + o, *w = in.w + o, *k = in.k + o, *v = in.v + o, *a = in.a + o, *b = in.b + o;
            const T *dyt = dy + o, *sa = sas + (t - t0) * N;
            const T *Sprev = states + (t - t0) * NN, *Scur = Sprev + NN;
            zero_n(dr, 5 * N);
            // Two rows at a time: the column sums are read and written once per pair.
            const Wkv7StepVectors<T> sv{r, w, k, a, b, dr, dk, db, dw, da};
            int64_t i = 0;
            for (; i + 1 < N; i += 2)
                wkv7_grad_rows<T, 2>(sv, G + i * N, Scur + i * N, Sprev + i * N, dyt + i, v + i, sa + i, g.dv + o + i, N);
            if (i < N) wkv7_grad_rows<T, 1>(sv, G + i * N, Scur + i * N, Sprev + i * N, dyt + i, v + i, sa + i, g.dv + o + i, N);
            copy_n(dr, N, g.dr + o);
            copy_n(dk, N, g.dk + o);
            copy_n(db, N, g.db + o);
            copy_n(dw, N, g.dw + o);
            copy_n(da, N, g.da + o);
        }
    }
}

// ---- RWKV-6 ----

// S <- diag(w) S + k v^T.
template <class T, int64_t NT> void wkv6_step(const T *Sin, T *Sout, const T *w, const T *k, const T *v, int64_t n) {
    const int64_t N = NT ? NT : n;
    for (int64_t i = 0; i < N; ++i) {
        const T *in = Sin + i * N;
        T *out = Sout + i * N;
        const T wi = w[i], ki = k[i];
        CDRMIX_SIMD
        for (int64_t j = 0; j < N; ++j) out[j] = in[j] * wi + ki * v[j];
    }
}

template <class T> T dot_ruk(const T *r, const T *u, const T *k, int64_t N) {
    T s = 0;
    for (int64_t i = 0; i < N; ++i) s += r[i] * u[i] * k[i];
    return s;
}

template <class T, int64_t NT> void wkv6_forward(const Wkv6Head<T> &in, T *S, T *y, T *chunks, int64_t chunk) {
    const int64_t N = NT ? NT : in.N, NN = N * N;
    for (int64_t t = 0; t < in.steps; ++t) {
        if (chunk > 0 && t % chunk == 0) copy_n(S, NN, chunks + (t / chunk) * NN);
        const int64_t o = t * in.stride;
        const T *r = in.r + o, *w = in.w + o, *k = in.k + o, *v = in.v + o;
        T *out = y + o;
        const T ruk = dot_ruk(r, in.u, k, N);
        CDRMIX_SIMD
        for (int64_t j = 0; j < N; ++j) out[j] = ruk * v[j];
        // Read S_{t-1} into y and advance it to S_t in the same sweep.
        for (int64_t i = 0; i < N; ++i) {
            T *row = S + i * N;
            const T ri = r[i], wi = w[i], ki = k[i];
            CDRMIX_SIMD
            for (int64_t j = 0; j < N; ++j) {
                out[j] += ri * row[j];
                row[j] = row[j] * wi + ki * v[j];
            }
        }
    }
}

// Workspace: chunk states.
template <class T, int64_t NT>
void wkv6_backward(const Wkv6Head<T> &in, const T *chunks, int64_t chunk, const T *dy, T *G, const Wkv6Grads<T> &g,
                   T *work) {
    const int64_t N = NT ? NT : in.N, NN = N * N;
    T *states = work;
    const int64_t num_chunks = (in.steps + chunk - 1) / chunk;
    zero_n(g.du, N);
    for (int64_t c = num_chunks - 1; c >= 0; --c) {
        const int64_t t0 = c * chunk, t1 = min_i64(in.steps, t0 + chunk);
        // S_{t0} .. S_{t1-1}: the states the chunk's steps read.
        copy_n(chunks + c * NN, NN, states);
        for (int64_t t = t0 + 1; t < t1; ++t) {
            const int64_t o = (t - 1) * in.stride;
            wkv6_step<T, NT>(states + (t - t0 - 1) * NN, states + (t - t0) * NN, in.w + o, in.k + o, in.v + o, N);
        }
        for (int64_t t = t1 - 1; t >= t0; --t) {
            const int64_t o = t * in.stride;
            const T *r = in.r + o, *w = in.w + o, *k = in.k + o, *v = in.v + o, *dyt = dy + o, *u = in.u;
            const T *Sprev = states + (t - t0) * NN;
            T *dv = g.dv + o;
            const T vdot = dot(v, dyt, N);
            const T ruk = dot_ruk(r, u, k, N);
            CDRMIX_SIMD
            for (int64_t j = 0; j < N; ++j) dv[j] = dyt[j] * ruk;
            for (int64_t i = 0; i < N; ++i) {
                T *gi = G + i * N;
                const T *sp = Sprev + i * N;
                const T ri = r[i], wi = w[i], ki = k[i];
                using V = Lanes<T>;
                const int64_t Nv = V::whole(N);
                const auto kiv = V::splat(ki), wiv = V::splat(wi), riv = V::splat(ri);
                auto driv = V::splat(0), dkiv = V::splat(0), dwiv = V::splat(0);
                for (int64_t j = 0; j < Nv; j += V::L) {
                    const auto g = V::load(gi + j), spj = V::load(sp + j), dyj = V::load(dyt + j);
                    driv += spj * dyj;
                    dkiv += g * V::load(v + j);
                    dwiv += g * spj;
                    V::store(dv + j, V::load(dv + j) + g * kiv);
                    V::store(gi + j, g * wiv + riv * dyj);
                }
                T dri = V::sum(driv), dki = V::sum(dkiv), dwi = V::sum(dwiv);
                for (int64_t j = Nv; j < N; ++j) {
                    dri += sp[j] * dyt[j];
                    dki += gi[j] * v[j];
                    dwi += gi[j] * sp[j];
                    dv[j] += gi[j] * ki;
                    gi[j] = gi[j] * wi + ri * dyt[j];
                }
                g.dr[o + i] = dri + u[i] * ki * vdot;
                g.dk[o + i] = dki + ri * u[i] * vdot;
                g.dw[o + i] = dwi;
                g.du[i] += ri * ki * vdot;
            }
        }
    }
}

// Head size 64 (RWKV's) gets its own instantiation: with the row length known
// the compiler unrolls the row sweeps and keeps them in registers.
constexpr int64_t kUnrolledN = 64;

template <class T> void wkv7_forward_any(const Wkv7Head<T> &in, T *S, T *y, T *chunks, int64_t chunk) {
    (in.N == kUnrolledN ? wkv7_forward<T, kUnrolledN> : wkv7_forward<T, 0>)(in, S, y, chunks, chunk);
}

template <class T>
void wkv7_backward_any(const Wkv7Head<T> &in, const T *chunks, int64_t chunk, const T *dy, T *G,
                       const Wkv7Grads<T> &g, T *work) {
    (in.N == kUnrolledN ? wkv7_backward<T, kUnrolledN> : wkv7_backward<T, 0>)(in, chunks, chunk, dy, G, g, work);
}

template <class T> void wkv6_forward_any(const Wkv6Head<T> &in, T *S, T *y, T *chunks, int64_t chunk) {
    (in.N == kUnrolledN ? wkv6_forward<T, kUnrolledN> : wkv6_forward<T, 0>)(in, S, y, chunks, chunk);
}

template <class T>
void wkv6_backward_any(const Wkv6Head<T> &in, const T *chunks, int64_t chunk, const T *dy, T *G,
                       const Wkv6Grads<T> &g, T *work) {
    (in.N == kUnrolledN ? wkv6_backward<T, kUnrolledN> : wkv6_backward<T, 0>)(in, chunks, chunk, dy, G, g, work);
}

template <class T> WkvKernels<T> make_kernels() {
    return {&wkv7_forward_any<T>,
            &wkv7_backward_any<T>,
            &wkv6_forward_any<T>,
            &wkv6_backward_any<T>,
            &CDRMIX_WKV_CHUNKED_NS::wkv7_forward<T>,
            &CDRMIX_WKV_CHUNKED_NS::wkv7_backward<T>};
}

} // namespace

const KernelSet &CDRMIX_WKV_SET() {
    static const KernelSet set{CDRMIX_WKV_ISA, make_kernels<float>(), make_kernels<double>()};
    return set;
}

} // namespace cdrmix::ops::cpu::kernels
