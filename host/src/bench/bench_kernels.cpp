// Rows 1-3 of `cdrmix bench` and the per-block table: GEMM peak, the WKV ops
// against their per-token references, MoE sparse dispatch against dense masking.
#include "bench/bench_table.hpp"
#include "bench/wkv_inputs.hpp"
#include "core/system_info.hpp"
#include "sdk/ops/wkv7_chunked.hpp"

#include <cdrmix/block.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace cdrmix::bench {

namespace {

using torch::Tensor;

double block_seconds(Block &block, int64_t B, int64_t T, int64_t C, int repeats) {
    Tensor x = torch::randn({B, T, C}, torch::requires_grad());
    Tensor tokens = torch::randint(0, 256, {B, T});
    return median_seconds(
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

void gemm_row(Run &run) {
    const int n = run.options.quick ? 1024 : 2048;
    run.gemm_gflops = measure_gemm_gflops(n, run.repeats);
    print_row("1 GEMM float32 peak (" + std::to_string(n) + "^3)", format("%.1f GFLOP/s", run.gemm_gflops), "-", "-");
}

// The op's fwd+bwd time with WKV-7 in the given form; the form in use before is restored.
double wkv_seconds(const WkvInputs &in, ops::cpu::chunked::Wkv7Form form, int repeats) {
    namespace ch = ops::cpu::chunked;
    const ch::Wkv7Form before = ch::wkv7_form();
    ch::set_wkv7_form(form);
    const double s = median_seconds([&] { wkv_forward_backward(in, true); }, repeats);
    ch::set_wkv7_form(before);
    return s;
}

// Medians of the op's fwd+bwd time in the recurrent and the chunked WKV-7
// form, the forms taking turns: a change in the machine's load between them
// then tilts both alike rather than the ratio.
std::pair<double, double> wkv7_form_seconds(const WkvInputs &in, int repeats) {
    using ops::cpu::chunked::Wkv7Form;
    std::vector<double> recurrent, chunked;
    for (int i = 0; i < repeats; ++i) {
        recurrent.push_back(wkv_seconds(in, Wkv7Form::recurrent, 1));
        chunked.push_back(wkv_seconds(in, Wkv7Form::chunked, 1));
    }
    auto median = [](std::vector<double> t) {
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    };
    return {median(recurrent), median(chunked)};
}

void wkv_rows(Run &run) {
    using ops::cpu::chunked::Wkv7Form;
    if (run.gemm_gflops <= 0) run.gemm_gflops = measure_gemm_gflops(1024, run.repeats);
    const int64_t B = 8, T = run.options.quick ? 128 : 512, C = 512, N = 64, H = C / N;
    const std::string shape = " fwd+bwd B8 T" + std::to_string(T) + " C512 fp32";
    auto rate_row = [&](const std::string &op, double flops, double seconds) {
        const double rate = flops / seconds / 1e9;
        print_row("  " + op + " achieved rate", format("%.1f GFLOP/s", rate),
                  format("GEMM %.1f GFLOP/s", run.gemm_gflops), format("%.1f%% of peak", 100.0 * rate / run.gemm_gflops));
    };
    for (bool v7 : {false, true}) {
        const std::string op = v7 ? "WKV-7" : "WKV-6";
        WkvInputs in = make_wkv_inputs(v7, B, T, H, N, torch::kFloat32, torch::kCPU);
        // Row 2 proper times the recurrent kernels (WKV-6 has only that form).
        const auto [fused, chunked] = v7 ? wkv7_form_seconds(in, run.repeats)
                                         : std::pair{wkv_seconds(in, Wkv7Form::recurrent, run.repeats), 0.0};
        // The reference builds a graph of T steps: its time varies more, so the full run takes a median of 3.
        const double ref = median_seconds([&] { wkv_forward_backward(in, false); }, run.options.quick ? 1 : 3);
        print_row("2 " + op + shape, format("%.1f ms", fused * 1e3), format("reference %.0f ms", ref * 1e3),
                  format("%.1fx faster", ref / fused));
        const double flops = wkv_flops(v7, B, T, H, N);
        rate_row(op, flops, fused);
        if (!v7) continue;
        // The rate counts the recurrence's FLOPs for both forms: the same work, so the rates compare.
        print_row("2 WKV-7 chunked" + shape, format("%.1f ms", chunked * 1e3),
                  format("recurrent %.1f ms", fused * 1e3), format("%.2fx faster", fused / chunked));
        rate_row("WKV-7 chunked", flops, chunked);
    }
}

void moe_row(Run &run) {
    const int64_t C = 512, N = run.options.quick ? 1024 : 4096;
    auto make = [&](const char *dispatch) {
        torch::manual_seed(1);
        return run.registry.create_block(Config(Json{{"type", "moe"}, {"num_experts", 8}, {"top_k", 2},
                                                     {"dispatch", dispatch}, {"token_shift", false}},
                                                "bench", ""),
                                         BlockContext{C, 1, 2});
    };
    auto sparse = make("sparse"), dense = make("dense");
    const double ts = block_seconds(*sparse, 1, N, C, run.repeats), td = block_seconds(*dense, 1, N, C, run.repeats);
    print_row("3 MoE E8 k2 C512 N" + std::to_string(N) + " fwd+bwd", format("sparse %.1f ms", ts * 1e3),
              format("dense (all experts) %.1f ms", td * 1e3), format("%.2fx the dense time", ts / td));
}

void block_rows(Run &run) {
    const int64_t B = run.options.quick ? 2 : 8, T = 256, C = 256;
    torch::manual_seed(2);
    auto mlp = torch::nn::Sequential(torch::nn::Linear(C, 4 * C), torch::nn::GELU(), torch::nn::Linear(4 * C, C));
    Tensor x = torch::randn({B, T, C}, torch::requires_grad());
    const double base = median_seconds([&] { mlp->forward(x).sum().backward(); }, run.repeats);
    for (const auto &f : run.registry.list()) {
        if (f.kind != PluginKind::Block) continue;
        std::shared_ptr<Block> block;
        try {
            // The `lua` block needs a module: the experiments' retention block.
            Json cfg{{"type", f.name}};
            if (f.name == "lua") cfg["file"] = source_file("experiments/modules/retention_block.lua").string();
            block = run.registry.create_block(Config(cfg, "bench", ""), BlockContext{C, 1, 2});
        } catch (const std::exception &e) {
            print_row("  block " + f.name, "cannot build with defaults", "-", "-");
            continue;
        }
        const double t = block_seconds(*block, B, T, C, run.repeats);
        print_row("  block " + f.name + " fwd+bwd B" + std::to_string(B) + " T256 C256", format("%.1f ms", t * 1e3),
                  format("MLP 4x %.1f ms", base * 1e3), format("%.2fx the MLP", t / base));
    }
}

} // namespace cdrmix::bench
