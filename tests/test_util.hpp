// Shared helpers for the C++ suites: creating blocks through the registry,
// perturbing parameters away from their (often zero) initialisation, and
// finite-difference gradient checks.
#pragma once

#include "core/files.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>

namespace cdrmix::test {

// A fresh, empty folder under the system temp folder: <tmp>/cdrmix_test_<name>.
inline std::filesystem::path scratch_dir(const std::string &name) {
    const std::filesystem::path p = std::filesystem::temp_directory_path() / ("cdrmix_test_" + name);
    remove_tree(p);
    std::filesystem::create_directories(p);
    return p;
}

// The smallest useful model spec: 2 layers of RWKV-7 (hidden 32, heads of 16)
// with channel-mix FFNs; tests add their MoE keys.
inline Json tiny_model_spec(int64_t vocab) {
    return {{"vocab_size", vocab},
            {"hidden_size", 32},
            {"num_layers", 2},
            {"mixer", {{"type", "rwkv7_time_mix"}, {"head_size", 16}}},
            {"ffn", {{"type", "rwkv_channel_mix"}, {"expansion", 2}}}};
}

// The message of the cdrmix::Error f throws, or "(no error)".
inline std::string error_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const Error &e) {
        return e.what();
    }
    return "(no error)";
}

inline std::shared_ptr<Block> make_block(const Json &cfg, BlockContext ctx) {
    return Registry::global().create_block(Config(cfg, "test", "test"), ctx);
}

// Reference inits zero several projections (outputs would be identically 0);
// tests need every path active.
inline void perturb(torch::nn::Module &m, double scale, uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    for (auto &p : m.parameters()) p.add_(torch::randn_like(p) * scale);
}

inline double max_abs_diff(const torch::Tensor &a, const torch::Tensor &b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// Compares d loss / d x[i] from autograd with central differences at `samples`
// evenly spread elements of x (float64).
inline void expect_gradient_matches(torch::Tensor x, const std::function<torch::Tensor()> &loss, int samples = 6,
                                    double eps = 1e-6, double tol = 1e-6) {
    ASSERT_EQ(x.scalar_type(), torch::kFloat64);
    if (x.grad().defined()) x.mutable_grad().zero_();
    loss().backward();
    // No gradient at all (e.g. an expert that received no token) means zero.
    torch::Tensor analytic = x.grad().defined() ? x.grad().clone().reshape({-1}) : torch::zeros({x.numel()}, x.options());
    torch::NoGradGuard no_grad;
    torch::Tensor flat = x.view({-1});
    const int64_t n = flat.numel();
    for (int s = 0; s < samples; ++s) {
        const int64_t i = (n - 1) * s / std::max(1, samples - 1);
        const double orig = flat[i].item<double>();
        flat[i] = orig + eps;
        const double up = loss().item<double>();
        flat[i] = orig - eps;
        const double down = loss().item<double>();
        flat[i] = orig;
        const double numeric = (up - down) / (2 * eps);
        const double a = analytic[i].item<double>();
        EXPECT_NEAR(a, numeric, tol * std::max(1.0, std::abs(numeric))) << "element " << i;
    }
}

} // namespace cdrmix::test
