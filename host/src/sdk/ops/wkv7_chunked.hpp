// RWKV-7 WKV in chunked matrix form on CPU: the same per-head contract as the
// recurrent kernels of wkv_head_kernels.hpp (same inputs, outputs, and states
// saved every `chunk` steps), with the work of each chunk of L steps done as
// small GEMMs through BLAS. The derivation is in wkv7_chunked.cpp.
//
// A chunk whose cumulative decay leaves the range the chunked form represents
// (or one shorter than a few steps) runs through the recurrent kernels given as
// `fallback`, so every input the recurrent kernels take is accepted.
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

// Entries of scratch memory one forward / backward call needs at chunk length L
// (the backward figure includes the recurrent fallback's workspace).
int64_t wkv7_forward_workspace(int64_t N, int64_t L);
int64_t wkv7_backward_workspace(int64_t N, int64_t L);

// As WkvKernels::wkv7_forward, with chunks of L steps (L > 0; chunks may be
// null when no states are to be saved) and `work` of wkv7_forward_workspace.
template <class T>
void wkv7_forward(const kernels::WkvKernels<T> &fallback, const kernels::Wkv7Head<T> &in, T *S, T *y, T *chunks,
                  int64_t L, T *work);

// As WkvKernels::wkv7_backward: chunks holds the states the forward pass saved
// every L steps; work has wkv7_backward_workspace(N, L) entries.
template <class T>
void wkv7_backward(const kernels::WkvKernels<T> &fallback, const kernels::Wkv7Head<T> &in, const T *chunks,
                   int64_t L, const T *dy, T *dS, const kernels::Wkv7Grads<T> &grads, T *work);

} // namespace cdrmix::ops::cpu::chunked
