// Picks the WKV head kernels for this CPU (see wkv_head_kernels.hpp) and the
// form of the WKV-7 op (see wkv7_chunked.hpp).
#include "wkv7_chunked.hpp"
#include "wkv_head_kernels.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/ops.hpp>

#include <atomic>
#include <cstdlib>
#include <string>

namespace cdrmix::ops::cpu::kernels {

int64_t wkv7_backward_workspace(int64_t N, int64_t chunk) { return (chunk + 1) * N * N + chunk * N + 5 * N; }

int64_t wkv6_backward_workspace(int64_t N, int64_t chunk) { return chunk * N * N; }

int available_kernel_sets(const KernelSet *out[3]) {
    int n = 0;
#if defined(CDRMIX_WKV_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) out[n++] = &kernels_avx512();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out[n++] = &kernels_avx2();
#endif
    out[n++] = &kernels_baseline();
    return n;
}

namespace {

const KernelSet &choose() {
    const KernelSet *sets[3];
    const int n = available_kernel_sets(sets);
    const char *wanted = std::getenv("CDRMIX_CPU_KERNELS");
    if (!wanted || !*wanted) return *sets[0];
    std::string names;
    for (int i = 0; i < n; ++i) {
        if (wanted == std::string(sets[i]->isa)) return *sets[i];
        names += std::string(i ? ", " : "") + sets[i]->isa;
    }
    throw Error(std::string("CDRMIX_CPU_KERNELS=") + wanted + ": not available on this CPU (available: " + names + ")");
}

} // namespace

const KernelSet &active_kernels() {
    static const KernelSet &set = choose();
    return set;
}

} // namespace cdrmix::ops::cpu::kernels

namespace cdrmix::ops::cpu::chunked {

namespace {

constexpr Wkv7Form kDefaultForm = Wkv7Form::chunked;

Wkv7Form form_from_environment() {
    const char *wanted = std::getenv("CDRMIX_WKV7_FORM");
    if (!wanted || !*wanted) return kDefaultForm;
    for (Wkv7Form f : {Wkv7Form::recurrent, Wkv7Form::chunked})
        if (wanted == std::string(wkv7_form_name(f))) return f;
    throw Error(std::string("CDRMIX_WKV7_FORM=") + wanted + ": expected recurrent or chunked");
}

std::atomic<Wkv7Form> &current_form() {
    static std::atomic<Wkv7Form> form{form_from_environment()};
    return form;
}

} // namespace

int64_t wkv7_forward_workspace(int64_t N, int64_t L) { return chunk_scratch(N, L); }

int64_t wkv7_backward_workspace(int64_t N, int64_t L) {
    return chunk_scratch(N, L) + chunk_grad_scratch(N, L) + kernels::wkv7_backward_workspace(N, L);
}

const char *wkv7_form_name(Wkv7Form form) { return form == Wkv7Form::chunked ? "chunked" : "recurrent"; }

Wkv7Form wkv7_form() { return current_form().load(); }

void set_wkv7_form(Wkv7Form form) { current_form().store(form); }

} // namespace cdrmix::ops::cpu::chunked

namespace cdrmix::ops {

const char *wkv_cpu_kernel_isa() { return cpu::kernels::active_kernels().isa; }

} // namespace cdrmix::ops
