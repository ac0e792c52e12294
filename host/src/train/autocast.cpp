#include "train/autocast.hpp"

#include <cdrmix/error.hpp>

#include <ATen/autocast_mode.h>

#include <fstream>

namespace cdrmix {

void AutocastGuard::check_mode(const std::string &mode, const std::string &where) {
    if (mode != "none" && mode != "bf16" && mode != "auto")
        throw Error(where + ": key 'autocast' must be \"auto\", \"none\" or \"bf16\", got \"" + mode + "\"");
}

bool AutocastGuard::cpu_has_native_bf16() {
    static const bool has = [] {
        std::ifstream in("/proc/cpuinfo");
        for (std::string line; std::getline(in, line);)
            if (line.rfind("flags", 0) == 0)
                return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
        return false;
    }();
    return has;
}

std::string AutocastGuard::resolve(const std::string &mode) {
    return mode == "auto" ? (cpu_has_native_bf16() ? "bf16" : "none") : mode;
}

AutocastGuard::AutocastGuard(const std::string &mode, const std::string &where) {
    check_mode(mode, where);
    if (resolve(mode) == "none") return;
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
