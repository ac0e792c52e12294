#include "core/system_info.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <dlfcn.h>
#include <unistd.h>

namespace cdrmix {

int configure_threads(int n) {
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(n);
    return n;
}

BlasInfo detect_blas() {
    BlasInfo info;
    // LibTorch is linked against libblas.so.3; Debian's alternatives decide which
    // implementation that is. /proc/self/maps shows what was actually mapped.
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        auto pos = line.find('/');
        if (pos == std::string::npos) continue;
        std::string path = line.substr(pos);
        std::string file = std::filesystem::path(path).filename().string();
        if (file.find("blas") == std::string::npos && file.find("mkl") == std::string::npos) continue;
        // GPU BLAS libraries (a CUDA or ROCm LibTorch maps them) do not serve CPU products.
        if (file.find("cublas") != std::string::npos || file.find("hipblas") != std::string::npos ||
            file.find("rocblas") != std::string::npos)
            continue;
        info.library = path;
        if (path.find("openblas") != std::string::npos) {
            info.optimised = true;
            info.name = path.find("openmp") != std::string::npos   ? "OpenBLAS (OpenMP)"
                        : path.find("pthread") != std::string::npos ? "OpenBLAS (pthreads)"
                                                                    : "OpenBLAS";
            break;
        }
        if (path.find("mkl") != std::string::npos || path.find("blis") != std::string::npos) {
            info.optimised = true;
            info.name = path.find("mkl") != std::string::npos ? "Intel MKL" : "BLIS";
            break;
        }
        if (path.find("atlas") != std::string::npos) {
            info.optimised = true;
            info.name = "ATLAS";
            break;
        }
        info.name = "reference BLAS (unoptimised)";
    }
    if (info.library.empty()) {
        // PyTorch's own builds link MKL statically: nothing separate is mapped.
        info.optimised = true;
        info.name = "linked into LibTorch";
        info.library = "(no separate BLAS library mapped)";
    }
    return info;
}

std::string openblas_core() {
    using CoreName = char *(*)();
    auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    const char *name = fn ? fn() : nullptr;
    return name ? name : "";
}

void restart_with_passive_openmp_wait(char **argv) {
    if (std::getenv("OMP_WAIT_POLICY")) return; // the user's choice, or already restarted
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    unsetenv("OMP_WAIT_POLICY"); // exec failed: carry on spinning
}

bool openblas_pinned_below_cpu() {
    const char *env = std::getenv("OPENBLAS_CORETYPE");
    if (!env || openblas_core().empty()) return false;
    std::string core = env;
    std::transform(core.begin(), core.end(), core.begin(), [](unsigned char c) { return std::tolower(c); });
    if (core != "haswell" && core != "zen") return false;
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512cd");
#else
    return false;
#endif
}

double measure_gemm_gflops(int n, int repeats) {
    torch::NoGradGuard no_grad;
    torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
    torch::Tensor c = torch::mm(a, b); // warm-up: thread pools, page faults
    double best = 1e30;
    for (int i = 0; i < repeats; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        torch::mm_out(c, a, b);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * n * static_cast<double>(n) * n / best / 1e9;
}

std::string torch_version_string() {
    return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
           std::to_string(TORCH_VERSION_PATCH);
}

} // namespace cdrmix
