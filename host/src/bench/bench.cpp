#include "bench/bench.hpp"

#include "core/system_info.hpp"

#include <cdrmix/ops.hpp>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <functional>

namespace cdrmix {

namespace {

using torch::Tensor;

// Median seconds of `repeats` runs after one warm-up.
double time_it(const std::function<void()> &f, int repeats) {
    f();
    std::vector<double> t;
    for (int i = 0; i < repeats; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

void row(const std::string &name, const std::string &figure, const std::string &baseline, const std::string &ratio) {
    std::printf("%-44s %-22s %-24s %s\n", name.c_str(), figure.c_str(), baseline.c_str(), ratio.c_str());
}

std::string fmt(const char *f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// Inputs shaped like the RWKV-7 block produces them.
std::vector<Tensor> wkv7_inputs(int64_t B, int64_t T, int64_t H, int64_t N) {
    auto r = torch::randn({B, T, H, N}) * 0.5, k = torch::randn({B, T, H, N}) * 0.5, v = torch::randn({B, T, H, N});
    auto w = torch::exp(-std::exp(-0.5) * torch::sigmoid(torch::randn({B, T, H, N})));
    auto kappa = torch::nn::functional::normalize(torch::randn({B, T, H, N}),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(-1));
    std::vector<Tensor> in{r, w, k, v, -kappa, kappa * torch::sigmoid(torch::randn({B, T, H, N}))};
    for (auto &t : in) t.requires_grad_(true);
    return in;
}

double wkv7_seconds(bool fused, const std::vector<Tensor> &in, int repeats) {
    return time_it(
        [&] {
            auto [y, s] = fused ? ops::wkv7(in[0], in[1], in[2], in[3], in[4], in[5], Tensor())
                                : ops::wkv7_reference(in[0], in[1], in[2], in[3], in[4], in[5], Tensor());
            y.sum().backward();
        },
        repeats);
}

double block_seconds(cdrmix::Block &block, int64_t B, int64_t T, int64_t C, int repeats) {
    Tensor x = torch::randn({B, T, C}, torch::requires_grad());
    Tensor tokens = torch::randint(0, 256, {B, T});
    return time_it(
        [&] {
            ForwardContext ctx;
            ctx.token_ids = tokens;
            Tensor y = block.forward(x, nullptr, ctx);
            for (const auto &a : ctx.aux_losses) y = y + a.value;
            y.sum().backward();
        },
        repeats);
}

} // namespace

int run_bench(const Registry &registry, const BenchOptions &o) {
    if (o.device.type() != c10::DeviceType::CPU) return run_gpu_bench(o);
    torch::manual_seed(0);
    const int reps = o.quick ? 2 : 5;
    std::printf("cdrmix bench%s: %d threads\n", o.quick ? " --quick" : "", at::get_num_threads());
    row("benchmark", "figure", "baseline (same run)", "ratio");

    // 1. GEMM peak: the physical limit the other rows are judged against.
    const double gflops = measure_gemm_gflops(o.quick ? 1024 : 2048, reps);
    row("GEMM float32 peak", fmt("%.1f GFLOP/s", gflops), "-", "-");

    // 2. WKV-7 fused op against the per-token reference recurrence.
    {
        const int64_t B = 8, T = o.quick ? 128 : 512, C = 512, N = 64, H = C / N;
        auto in = wkv7_inputs(B, T, H, N);
        const double fused = wkv7_seconds(true, in, reps), ref = wkv7_seconds(false, in, 1);
        // Per step and head: state update 4 N^2 multiply-adds forward, about 3x that backward.
        const double flops = double(B * T * H) * N * N * 2.0 * (4 + 12);
        row("WKV-7 fwd+bwd B8 T" + std::to_string(T) + " C512", fmt("%.1f ms", fused * 1e3),
            fmt("reference %.1f ms", ref * 1e3), fmt("%.1fx faster", ref / fused));
        row("  WKV-7 achieved rate", fmt("%.1f GFLOP/s", flops / fused / 1e9), fmt("GEMM %.1f GFLOP/s", gflops),
            fmt("%.1f%% of peak", 100.0 * flops / fused / 1e9 / gflops));
    }

    // 3. MoE E=8, k=2: sparse dispatch against running every expert and masking.
    {
        const int64_t C = 512, N = o.quick ? 1024 : 4096;
        auto make = [&](const char *dispatch) {
            torch::manual_seed(1);
            return registry.create_block(Config(Json{{"type", "moe"}, {"num_experts", 8}, {"top_k", 2},
                                                     {"dispatch", dispatch}, {"token_shift", false}},
                                                "bench", ""),
                                         BlockContext{C, 1, 2});
        };
        auto sparse = make("sparse"), dense = make("dense");
        const double ts = block_seconds(*sparse, 1, N, C, reps), td = block_seconds(*dense, 1, N, C, reps);
        row("MoE E8 k2 C512 N" + std::to_string(N) + " fwd+bwd", fmt("sparse %.1f ms", ts * 1e3),
            fmt("dense %.1f ms", td * 1e3), fmt("%.2fx the dense time", ts / td));
    }

    // 4. Every registered block, fwd+bwd at B=8, T=256, C=256, against a C x 4C MLP on the same tokens.
    {
        const int64_t B = o.quick ? 2 : 8, T = 256, C = 256;
        torch::manual_seed(2);
        auto mlp = torch::nn::Sequential(torch::nn::Linear(C, 4 * C), torch::nn::GELU(), torch::nn::Linear(4 * C, C));
        Tensor x = torch::randn({B, T, C}, torch::requires_grad());
        const double base = time_it([&] { mlp->forward(x).sum().backward(); }, reps);
        for (const auto &f : registry.list()) {
            if (f.kind != PluginKind::Block) continue;
            std::shared_ptr<Block> block;
            try {
                block = registry.create_block(Config(Json{{"type", f.name}}, "bench", ""), BlockContext{C, 1, 2});
            } catch (const std::exception &e) {
                row("block " + f.name, "cannot build with defaults", "-", "-");
                continue;
            }
            const double t = block_seconds(*block, B, T, C, reps);
            row("block " + f.name + " fwd+bwd B" + std::to_string(B) + " T256 C256", fmt("%.1f ms", t * 1e3),
                fmt("MLP 4x %.1f ms", base * 1e3), fmt("%.2fx the MLP", t / base));
        }
    }
    return 0;
}

} // namespace cdrmix
