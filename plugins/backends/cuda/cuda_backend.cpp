// The CUDA and ROCm backends. Built against a CUDA LibTorch (CDRMIX_GPU_RUNTIME)
// they select devices, report memory, synchronise, use NCCL (RCCL on ROCm) and
// list the cdrmix:: ops that have GPU kernels (cuda_ops.cpp). Built against a
// LibTorch without GPU support they register anyway and say, wherever they are
// asked, why they cannot run and how to build them so they can.
#include <cdrmix/error.hpp>
#include <cdrmix/sdk.hpp>

#include <c10/macros/Macros.h>
#include <torch/version.h>

#if CDRMIX_GPU_RUNTIME
#include <c10/cuda/CUDAFunctions.h>
#if defined(CDRMIX_HIP)
#include <hip/hip_runtime_api.h>
#else
#include <cuda_runtime_api.h>
#endif
#endif

namespace {

// How this plugin was built, for the reasons below.
std::string torch_version() { return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR); }

#if defined(USE_ROCM)
constexpr bool kTorchIsRocm = true;
#else
constexpr bool kTorchIsRocm = false;
#endif

class GpuBackend : public cdrmix::Backend {
public:
    // rocm: whether this object speaks for ROCm (LibTorch's ROCm builds reuse the CUDA device type).
    explicit GpuBackend(bool rocm) : rocm_(rocm) {}

    std::string name() const override { return rocm_ ? "rocm" : "cuda"; }
    c10::DeviceType device_type() const override { return c10::DeviceType::CUDA; }

    std::string unavailable_reason() const override {
        if (rocm_ != kTorchIsRocm) {
            if (rocm_)
                return "this LibTorch " + torch_version() +
                       " is not a ROCm build: build against a ROCm LibTorch with -DTorch_DIR=<rocm libtorch>/share/cmake/Torch "
                       "-DCDRMIX_ROCM=ON (see docs/backends.md)";
            return "this LibTorch " + torch_version() + " is a ROCm build: use the rocm backend";
        }
#if CDRMIX_GPU_RUNTIME
        if (device_count() == 0) return std::string("no ") + (rocm_ ? "ROCm" : "CUDA") + " device is visible to this process";
        return "";
#else
        return "this LibTorch " + torch_version() + " was built without " + (rocm_ ? "ROCm" : "CUDA") +
               ": rebuild against a " + (rocm_ ? "ROCm" : "CUDA") +
               " LibTorch (-DTorch_DIR=<libtorch>/share/cmake/Torch; a PyTorch 2.x wheel's torch/share/cmake works)" +
               (CDRMIX_GPU_KERNELS_COMPILED ? "; the GPU kernels themselves compiled with nvcc in this build"
                                            : "; nvcc was not found, so the GPU kernels were not compiled either");
#endif
    }

    int64_t device_count() const override {
#if CDRMIX_GPU_RUNTIME
        if (rocm_ != kTorchIsRocm) return 0;
        return c10::cuda::device_count();
#else
        return 0;
#endif
    }

    cdrmix::MemoryStats memory() const override {
        cdrmix::MemoryStats m;
#if CDRMIX_GPU_RUNTIME
        if (!unavailable_reason().empty()) return m;
        size_t free_bytes = 0, total_bytes = 0;
#if defined(CDRMIX_HIP)
        const bool ok = hipMemGetInfo(&free_bytes, &total_bytes) == hipSuccess;
#else
        const bool ok = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
#endif
        if (ok) {
            m.used_bytes = int64_t(total_bytes - free_bytes);
            m.total_bytes = int64_t(total_bytes);
        }
#endif
        return m;
    }

    void synchronize() const override {
        require_usable();
#if CDRMIX_GPU_RUNTIME
        c10::cuda::device_synchronize();
#endif
    }

    std::string collective_backend() const override { return rocm_ ? "rccl" : "nccl"; }

    std::vector<std::string> kernels() const override {
        return unavailable_reason().empty() ? cdrmix::ops_with_kernel(c10::DispatchKey::CUDA) : std::vector<std::string>{};
    }

private:
    void require_usable() const {
        const std::string why = unavailable_reason();
        if (!why.empty()) throw cdrmix::Error("backend " + name() + " is unusable: " + why);
    }

    bool rocm_;
};

} // namespace

CDRMIX_PLUGIN("cuda", "1.0.0", "CUDA and ROCm backends (GPU WKV kernels, NCCL/RCCL collectives)") {
    // No keys: the schemas carry the descriptions only.
    const cdrmix::Schema cuda("NVIDIA GPUs through a CUDA LibTorch");
    registry.add_backend("cuda", cuda.doc(), cuda,
                         [](const cdrmix::Config &) { return std::make_shared<GpuBackend>(false); });
    const cdrmix::Schema rocm("AMD GPUs through a ROCm LibTorch (CUDA device type)");
    registry.add_backend("rocm", rocm.doc(), rocm,
                         [](const cdrmix::Config &) { return std::make_shared<GpuBackend>(true); });
}
