// Pieces shared by the WKV kernels: element loads/stores in float, and the
// dispatch from (dtype, head size) to a kernel instantiation. CUDA and HIP alike.
#pragma once

#include "wkv_cuda.hpp"

#if defined(CDRMIX_HIP)
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#if __has_include(<hip/hip_bf16.h>) // ROCm 6 and later: CUDA's intrinsics
#include <hip/hip_bf16.h>
using cdrmix_bf16 = __hip_bfloat16;
#else // ROCm 5 (Debian 12's HIP 5.2): the older struct, the same 16 bits, converted by its own operators
#include <hip/hip_bfloat16.h>
using cdrmix_bf16 = hip_bfloat16;
#define CDRMIX_BF16_STRUCT 1
#endif
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
using cdrmix_bf16 = __nv_bfloat16;
#endif

#include <stdexcept>
#include <string>
#include <type_traits>

namespace cdrmix::gpu::detail {

__device__ __forceinline__ float to_f(float x) { return x; }
#if defined(CDRMIX_BF16_STRUCT)
__device__ __forceinline__ float to_f(cdrmix_bf16 x) { return static_cast<float>(x); }
#else
__device__ __forceinline__ float to_f(cdrmix_bf16 x) { return __bfloat162float(x); }
#endif
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }

template <class T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
#if defined(CDRMIX_BF16_STRUCT)
template <> __device__ __forceinline__ cdrmix_bf16 from_f<cdrmix_bf16>(float x) { return cdrmix_bf16(x); } // nearest even
#else
template <> __device__ __forceinline__ cdrmix_bf16 from_f<cdrmix_bf16>(float x) { return __float2bfloat16(x); }
#endif
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }

// A sum over a fully unrolled loop kept as four partial sums, so its additions
// do not form one dependent chain: these loops are bound by latency.
struct Sum4 {
    float p[4] = {0.f, 0.f, 0.f, 0.f};
    __device__ __forceinline__ void fma(int j, float a, float b) { p[j & 3] += a * b; }
    __device__ __forceinline__ float total() const { return (p[0] + p[1]) + (p[2] + p[3]); }
};

inline void check_launch(const char *what) {
#if defined(CDRMIX_HIP)
    hipError_t e = hipGetLastError();
    if (e != hipSuccess) throw std::runtime_error(std::string(what) + ": " + hipGetErrorString(e));
#else
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
#endif
}

// Calls f(T{}, std::integral_constant<int, N>{}) for the runtime dtype and head size.
template <class F> void dispatch(DType dt, int N, const char *what, F &&f) {
    auto by_n = [&](auto tag) {
        using T = decltype(tag);
        switch (N) {
        case 16: f(T{}, std::integral_constant<int, 16>{}); return;
        case 32: f(T{}, std::integral_constant<int, 32>{}); return;
        case 64: f(T{}, std::integral_constant<int, 64>{}); return;
        default: throw std::runtime_error(std::string(what) + ": head size " + std::to_string(N) +
                                          " has no GPU kernel (16, 32 or 64)");
        }
    };
    switch (dt) {
    case DType::F32: by_n(float{}); break;
    case DType::BF16: by_n(cdrmix_bf16{}); break;
    case DType::F16: by_n(__half{}); break;
    }
    check_launch(what);
}

} // namespace cdrmix::gpu::detail
