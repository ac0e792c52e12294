#include "train/autocast.hpp"

#include <cdrmix/error.hpp>

#include <ATen/autocast_mode.h>

namespace cdrmix {

void AutocastGuard::check_mode(const std::string &mode, const std::string &where) {
    if (mode != "none" && mode != "bf16")
        throw Error(where + ": key 'autocast' must be \"none\" or \"bf16\", got \"" + mode + "\"");
}

AutocastGuard::AutocastGuard(const std::string &mode, const std::string &where) {
    check_mode(mode, where);
    if (mode == "none") return;
    active_ = true;
    was_enabled_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = static_cast<int>(at::autocast::get_autocast_cpu_dtype());
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
    at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(static_cast<at::ScalarType>(previous_dtype_));
}

} // namespace cdrmix
