#include "train/autocast.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/torch_compat.hpp>

#include <ATen/autocast_mode.h>

#include <fstream>

namespace cdrmix {

namespace {

// CUDA autocast covers ROCm too: its LibTorch reuses the CUDA device type.
bool autocast_device(c10::DeviceType d) { return d == c10::DeviceType::CPU || d == c10::DeviceType::CUDA; }

#if CDRMIX_AUTOCAST_BY_DEVICE_TYPE
bool is_enabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void set_enabled(c10::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
at::ScalarType get_dtype(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void set_dtype(c10::DeviceType d, at::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
bool is_enabled(c10::DeviceType d) {
    return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void set_enabled(c10::DeviceType d, bool on) {
    d == c10::DeviceType::CPU ? at::autocast::set_cpu_enabled(on) : at::autocast::set_enabled(on);
}
at::ScalarType get_dtype(c10::DeviceType d) {
    return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_dtype(c10::DeviceType d, at::ScalarType t) {
    d == c10::DeviceType::CPU ? at::autocast::set_autocast_cpu_dtype(t) : at::autocast::set_autocast_gpu_dtype(t);
}
#endif

} // namespace

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

std::string AutocastGuard::resolve(const std::string &mode, c10::DeviceType device) {
    if (mode != "auto") return mode;
    if (device == c10::DeviceType::CUDA) return "bf16";
    return device == c10::DeviceType::CPU && cpu_has_native_bf16() ? "bf16" : "none";
}

bool AutocastGuard::enabled(c10::DeviceType device) { return autocast_device(device) && is_enabled(device); }

AutocastGuard::AutocastGuard(const std::string &mode, const std::string &where, c10::DeviceType device) {
    check_mode(mode, where);
    if (resolve(mode, device) == "none") return;
    if (!autocast_device(device))
        throw Error(where + ": bf16 autocast runs on the CPU and CUDA, not on " + c10::DeviceTypeName(device) +
                    " (set autocast = \"none\")");
    active_ = true;
    device_ = device;
    was_enabled_ = is_enabled(device);
    previous_dtype_ = static_cast<int>(get_dtype(device));
    set_dtype(device, at::kBFloat16);
    set_enabled(device, true);
    at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_enabled(device_, was_enabled_);
    set_dtype(device_, static_cast<at::ScalarType>(previous_dtype_));
}

} // namespace cdrmix
