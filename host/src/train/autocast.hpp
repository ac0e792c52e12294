// bf16 autocast: matrix products and convolutions run in bfloat16 while the
// weights, the loss and the optimiser stay float32. On the CPU it uses
// LibTorch's CPU autocast, on CUDA its CUDA autocast (the device of the model).
// Scoped: the previous autocast settings come back when the guard ends, and
// the cast-weight cache is cleared so it never outlives one forward pass.
// "auto" means bf16 on CUDA (every architecture this project builds for,
// sm_80 and later, has bf16 tensor cores) and on CPUs with native bf16
// arithmetic (AVX512-BF16 or AMX), where it measured faster (docs/training.md),
// and none elsewhere, where bf16 would be emulated. The trainer's default is
// "none" (see trainer.hpp).
#pragma once

#include <c10/core/DeviceType.h>

#include <string>

namespace cdrmix {

class AutocastGuard {
public:
    // mode: "none" (does nothing) or "bf16" for models on `device`. Anything else
    // throws naming `where`.
    AutocastGuard(const std::string &mode, const std::string &where, c10::DeviceType device = c10::DeviceType::CPU);
    ~AutocastGuard();
    AutocastGuard(const AutocastGuard &) = delete;
    AutocastGuard &operator=(const AutocastGuard &) = delete;

    // Accepts "none", "bf16" and "auto"; throws naming `where` otherwise.
    static void check_mode(const std::string &mode, const std::string &where);
    // "auto" -> "bf16" or "none" for `device`; other modes unchanged.
    static std::string resolve(const std::string &mode, c10::DeviceType device = c10::DeviceType::CPU);
    static bool cpu_has_native_bf16();
    // Whether LibTorch's autocast for `device` is on in this thread.
    static bool enabled(c10::DeviceType device);

private:
    bool active_ = false;
    c10::DeviceType device_ = c10::DeviceType::CPU;
    bool was_enabled_ = false;
    int previous_dtype_ = 0;
};

} // namespace cdrmix
