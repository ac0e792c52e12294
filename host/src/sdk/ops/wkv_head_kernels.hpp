// The WKV recurrences of one (batch, head) sequence on raw pointers: the inner
// loops of the CPU ops, free of ATen so that wkv_head_kernels.cpp can be
// compiled once per instruction set (baseline x86-64, AVX2, AVX-512) and the
// fastest one the CPU supports picked at run time. The ATen side
// (wkv6_cpu.cpp, wkv7_cpu.cpp) checks shapes, converts dtypes, allocates and
// runs the heads in parallel.
//
// Layout: entry n of step t of an input is at p[t * stride + n] (stride = H * N
// for [B,T,H,N] tensors); outputs and gradients use the same layout. States are
// N x N, row-major. T is float or double (bf16/half inputs are widened first).
#pragma once

#include <cstdint>

namespace cdrmix::ops::cpu::kernels {

template <class T> struct Wkv7Head {
    const T *r, *w, *k, *v, *a, *b;
    int64_t steps, stride, N;
};

template <class T> struct Wkv7Grads {
    T *dr, *dw, *dk, *dv, *da, *db;
};

template <class T> struct Wkv6Head {
    const T *r, *w, *k, *v;
    const T *u; // the bonus: one N-vector per head, constant over time
    int64_t steps, stride, N;
};

template <class T> struct Wkv6Grads {
    T *dr, *dw, *dk, *dv;
    T *du; // N entries, accumulated over the steps (the caller sums over the batch)
};

template <class T> struct WkvKernels {
    // S holds the initial state on entry and the final state on exit. y gets
    // the outputs. With chunk > 0, chunks gets S before every chunk-th step
    // ((steps + chunk - 1) / chunk states), which the backward pass starts from.
    void (*wkv7_forward)(const Wkv7Head<T> &in, T *S, T *y, T *chunks, int64_t chunk);
    // dS holds the gradient of the final state on entry and of the initial
    // state on exit; work has wkv7_backward_workspace(N, chunk) entries.
    void (*wkv7_backward)(const Wkv7Head<T> &in, const T *chunks, int64_t chunk, const T *dy, T *dS,
                          const Wkv7Grads<T> &grads, T *work);
    void (*wkv6_forward)(const Wkv6Head<T> &in, T *S, T *y, T *chunks, int64_t chunk);
    // As wkv7_backward; du is overwritten (not accumulated into).
    void (*wkv6_backward)(const Wkv6Head<T> &in, const T *chunks, int64_t chunk, const T *dy, T *dS,
                          const Wkv6Grads<T> &grads, T *work);
    // wkv7_forward / wkv7_backward in chunked matrix form (wkv7_chunked.hpp) with
    // chunks of L steps: self is the set holding them, whose recurrent kernels
    // run the chunks the matrix form leaves; work has
    // chunked::wkv7_forward_workspace / wkv7_backward_workspace(N, L) entries.
    // The forward pass's chunks may be null (no states saved).
    void (*wkv7_chunked_forward)(const WkvKernels &self, const Wkv7Head<T> &in, T *S, T *y, T *chunks, int64_t L,
                                 T *work);
    void (*wkv7_chunked_backward)(const WkvKernels &self, const Wkv7Head<T> &in, const T *chunks, int64_t L,
                                  const T *dy, T *dS, const Wkv7Grads<T> &grads, T *work);
};

// Entries of scratch memory one backward call needs.
int64_t wkv7_backward_workspace(int64_t N, int64_t chunk);
int64_t wkv6_backward_workspace(int64_t N, int64_t chunk);

struct KernelSet {
    const char *isa; // "avx512", "avx2" or "baseline"
    WkvKernels<float> f32;
    WkvKernels<double> f64;
};

// The fastest set this CPU runs, unless CDRMIX_CPU_KERNELS names another
// (baseline, avx2, avx512; one the CPU lacks is refused with an error).
const KernelSet &active_kernels();
// The sets this CPU can run, fastest first (for tests and `cdrmix doctor`).
int available_kernel_sets(const KernelSet *out[3]);

// One set per compilation of wkv_head_kernels.cpp.
const KernelSet &kernels_baseline();
const KernelSet &kernels_avx2();
const KernelSet &kernels_avx512();

} // namespace cdrmix::ops::cpu::kernels
