// RWKV-7 WKV in chunked matrix form on CPU: the same per-head contract as the
// recurrent kernels of wkv_head_kernels.hpp (same inputs, outputs, and states
// saved every `chunk` steps), with the work of each chunk of L steps done as
// small GEMMs through BLAS. The derivation is in wkv7_chunked.cpp, which is
// compiled per instruction set beside wkv_head_kernels.cpp; each KernelSet
// holds its build as wkv7_chunked_forward / wkv7_chunked_backward.
//
// A chunk whose cumulative decay leaves the range the chunked form represents
// (or one shorter than a few steps) runs through the set's recurrent kernels,
// so every input the recurrent kernels take is accepted.
#pragma once

#include "wkv_head_kernels.hpp"

#include <cstdint>

namespace cdrmix::ops::cpu::chunked {

// Which form the CPU op cdrmix::wkv7_forward / wkv7_backward runs.
enum class Wkv7Form { recurrent, chunked };

// CDRMIX_WKV7_FORM=recurrent|chunked when set (anything else is refused with an
// error), else the default; set_wkv7_form overrides both (the bench times each).
Wkv7Form wkv7_form();
void set_wkv7_form(Wkv7Form form);
const char *wkv7_form_name(Wkv7Form form);

// Scratch of one chunk (its scaled rows and products) and of its gradients.
// Internal linkage: this header is also compiled per instruction set.
static constexpr int64_t chunk_scratch(int64_t N, int64_t L) { return 10 * L * N + 5 * L * L + N; }
static constexpr int64_t chunk_grad_scratch(int64_t N, int64_t L) { return 11 * L * N + 4 * L * L + 2 * N; }

// Entries of scratch memory one forward / backward call needs at chunk length L
// (the backward figure includes the recurrent fallback's workspace).
int64_t wkv7_forward_workspace(int64_t N, int64_t L);
int64_t wkv7_backward_workspace(int64_t N, int64_t L);

} // namespace cdrmix::ops::cpu::chunked

#ifdef CDRMIX_WKV_CHUNKED_NS
// One instruction set's build (see WkvKernels::wkv7_chunked_forward).
namespace cdrmix::ops::cpu::kernels::CDRMIX_WKV_CHUNKED_NS {

template <class T>
void wkv7_forward(const WkvKernels<T> &self, const Wkv7Head<T> &in, T *S, T *y, T *chunks, int64_t L, T *work);

template <class T>
void wkv7_backward(const WkvKernels<T> &self, const Wkv7Head<T> &in, const T *chunks, int64_t L, const T *dy, T *dS,
                   const Wkv7Grads<T> &grads, T *work);

} // namespace cdrmix::ops::cpu::kernels::CDRMIX_WKV_CHUNKED_NS
#endif
