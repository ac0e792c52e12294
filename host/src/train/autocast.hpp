// bf16 autocast on the CPU (LibTorch 1.13): matrix products and convolutions
// run in bfloat16 while the weights, the loss and the optimiser stay float32.
// Scoped: the previous autocast settings come back when the guard ends, and
// the cast-weight cache is cleared so it never outlives one forward pass.
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

    static void check_mode(const std::string &mode, const std::string &where);

private:
    bool active_ = false;
    bool was_enabled_ = false;
    int previous_dtype_ = 0;
};

} // namespace cdrmix
