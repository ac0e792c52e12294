// The CPU backend: always usable. Memory is this process's resident set against
// physical RAM; collectives run over Gloo; kernels are the cdrmix:: ops that
// have a CPU implementation in PyTorch's dispatcher.
#include <cdrmix/sdk.hpp>

#include <unistd.h>

#include <fstream>

namespace {

class CpuBackend : public cdrmix::Backend {
public:
    std::string name() const override { return "cpu"; }
    c10::DeviceType device_type() const override { return c10::DeviceType::CPU; }
    int64_t device_count() const override { return 1; }
    std::string unavailable_reason() const override { return ""; }

    cdrmix::MemoryStats memory() const override {
        cdrmix::MemoryStats m;
        const long page = sysconf(_SC_PAGESIZE);
        std::ifstream statm("/proc/self/statm");
        long size = 0, resident = 0;
        if (statm >> size >> resident) m.used_bytes = int64_t(resident) * page;
        m.total_bytes = int64_t(sysconf(_SC_PHYS_PAGES)) * page;
        return m;
    }

    void synchronize() const override {} // CPU ops complete before they return
    std::string collective_backend() const override { return "gloo"; }

    std::vector<std::string> kernels() const override { return cdrmix::ops_with_kernel(c10::DispatchKey::CPU); }
};

} // namespace

CDRMIX_PLUGIN("cpu", "1.0.0", "CPU backend (LibTorch CPU kernels, Gloo collectives)") {
    // No keys: the schema carries the description only.
    const cdrmix::Schema s("CPU: always available");
    registry.add_backend("cpu", s.doc(), s, [](const cdrmix::Config &) { return std::make_shared<CpuBackend>(); });
}
