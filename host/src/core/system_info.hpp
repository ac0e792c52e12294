// Facts about this machine that decide training speed: LibTorch version,
// thread counts, which BLAS is really loaded, and a measured GEMM rate.
#pragma once

#include <string>

namespace cdrmix {

// Sets LibTorch's intra-op thread count. n <= 0 means all hardware threads
// (LibTorch 1.13 would otherwise use half of them, assuming SMT).
int configure_threads(int n);

struct BlasInfo {
    std::string library;  // resolved path of the loaded BLAS, or "" if none found
    std::string name;     // "OpenBLAS (OpenMP)", "reference BLAS", ...
    bool optimised = false;
};

BlasInfo detect_blas();

// OpenBLAS's name for the kernels it picked ("Haswell", "SkylakeX", ...), or ""
// when the BLAS is not OpenBLAS.
std::string openblas_core();

// LibTorch's OpenMP threads (libgomp) spin at every barrier by default. When
// another process holds a core, a spinning thread takes the time the working one
// needs and training gets several times slower (4-9x measured on 2 cores with a
// build beside it); on an idle machine passive waiting costs 20-30% instead
// (OMP_WAIT_POLICY=active is faster there). libgomp reads OMP_WAIT_POLICY once,
// when it loads (before main), so this applies "passive" by starting the
// program again with it set
// (execv of /proc/self/exe); a user's own OMP_WAIT_POLICY is kept. Returns when
// nothing needed changing or the exec failed.
void restart_with_passive_openmp_wait(char **argv);

// True when OPENBLAS_CORETYPE pins OpenBLAS to AVX2 kernels (Haswell, Zen) on a
// CPU with the AVX-512 subsets its SkylakeX kernels need (about 2x the GEMM rate
// measured on an AVX-512 EPYC).
bool openblas_pinned_below_cpu();

// Best-of-several float32 GFLOP/s of an n x n x n matrix product.
double measure_gemm_gflops(int n = 1024, int repeats = 5);

std::string torch_version_string();

} // namespace cdrmix
