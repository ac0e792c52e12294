// The Tenstorrent backend. Tensors on Tenstorrent devices live under PyTorch's
// PrivateUse1 device type (renamed "tt" here, as TT-NN's extension does); the
// cdrmix:: ops would register TT kernels under the PrivateUse1 dispatch key.
// None are written yet, so kernels() is empty and training falls back to the
// ops' composite paths only where those exist.
//
// Built without TT-Metal (no -DCDRMIX_TTNN_DIR) the backend is registered so
// `cdrmix doctor` and `cdrmix plugins` can say what is missing, and every use
// fails with that message. Nothing here pretends to be a device.
#include <cdrmix/error.hpp>
#include <cdrmix/sdk.hpp>

#include <c10/core/DeviceType.h>

#if CDRMIX_HAVE_TTNN
#include <tt-metalium/host_api.hpp>
#endif

namespace {

constexpr const char *kMissing =
    "TT-NN not found: build with -DCDRMIX_TTNN_DIR=<TT-Metal install> (see docs/backends.md)";

class TenstorrentBackend : public cdrmix::Backend {
public:
    std::string name() const override { return "tenstorrent"; }
    c10::DeviceType device_type() const override { return c10::DeviceType::PrivateUse1; }

    int64_t device_count() const override {
#if CDRMIX_HAVE_TTNN
        return static_cast<int64_t>(tt::tt_metal::GetNumAvailableDevices());
#else
        return 0;
#endif
    }

    std::string unavailable_reason() const override {
#if CDRMIX_HAVE_TTNN
        return device_count() == 0 ? "TT-Metal found no Tenstorrent device" : "";
#else
        return kMissing;
#endif
    }

    cdrmix::MemoryStats memory() const override { return {}; } // TT-Metal reports per-buffer, not per-process

    void synchronize() const override {
        if (!unavailable_reason().empty()) throw cdrmix::Error("backend tenstorrent is unusable: " + unavailable_reason());
    }

    std::string collective_backend() const override { return "none"; }
    std::vector<std::string> kernels() const override { return {}; }
};

} // namespace

CDRMIX_PLUGIN("tenstorrent", "0.1.0", "Tenstorrent backend (PrivateUse1 through TT-Metal/TT-NN)") {
#if CDRMIX_HAVE_TTNN
    c10::register_privateuse1_backend("tt");
#endif
    // No keys: the schema carries the description only.
    const cdrmix::Schema s("Tenstorrent accelerators through TT-Metal (PrivateUse1)");
    registry.add_backend("tenstorrent", s.doc(), s,
                         [](const cdrmix::Config &) { return std::make_shared<TenstorrentBackend>(); });
}
