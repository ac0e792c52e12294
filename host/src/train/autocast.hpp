// bf16 autocast on the CPU (LibTorch 1.13): matrix products and convolutions
// run in bfloat16 while the weights, the loss and the optimiser stay float32.
// Scoped: the previous autocast settings come back when the guard ends, and
// the cast-weight cache is cleared so it never outlives one forward pass.
// "auto" means bf16 on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX),
// where it measured faster (docs/training.md), and none elsewhere, where bf16
// would be emulated. The trainer's default is "none" (see trainer.hpp).
#pragma once

#include <string>

namespace cdrmix {

class AutocastGuard {
public:
    // mode: "none" (does nothing) or "bf16". Anything else throws naming `where`.
    AutocastGuard(const std::string &mode, const std::string &where);
    ~AutocastGuard();
    AutocastGuard(const AutocastGuard &) = delete;
    AutocastGuard &operator=(const AutocastGuard &) = delete;

    // Accepts "none", "bf16" and "auto"; throws naming `where` otherwise.
    static void check_mode(const std::string &mode, const std::string &where);
    // "auto" -> "bf16" or "none" for this CPU; other modes unchanged.
    static std::string resolve(const std::string &mode);
    static bool cpu_has_native_bf16();

private:
    bool active_ = false;
    bool was_enabled_ = false;
    int previous_dtype_ = 0;
};

} // namespace cdrmix
