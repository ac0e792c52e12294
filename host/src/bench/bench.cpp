#include "bench/bench.hpp"
#include "bench/bench_table.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>

namespace cdrmix {

namespace {

struct RowGroup {
    const char *name;
    void (*run)(bench::Run &);
};

// Table order; `--only` picks by name.
const std::vector<RowGroup> &row_groups() {
    static const std::vector<RowGroup> groups{
        {"gemm", bench::gemm_row},
        {"wkv", bench::wkv_rows},
        {"moe", bench::moe_row},
        {"nanogpt", bench::nanogpt_row},
        {"mfu", bench::mfu_row},
        {"generation", bench::generation_rows},
        {"data", bench::data_rows},
        {"gui", bench::gui_row},
        {"dist", bench::dist_rows},
        {"lua", bench::lua_router_row},
        {"checkpoint", bench::checkpoint_row},
        {"bf16", bench::bf16_weights_row},
        {"blocks", bench::block_rows},
    };
    return groups;
}

} // namespace

std::vector<std::string> bench_row_names() {
    std::vector<std::string> names;
    for (const auto &g : row_groups()) names.emplace_back(g.name);
    return names;
}

int run_bench(const Registry &registry, const BenchOptions &o) {
    if (o.device.type() != c10::DeviceType::CPU) return run_gpu_bench(o);
    for (const auto &name : o.only) {
        const auto names = bench_row_names();
        if (std::find(names.begin(), names.end(), name) == names.end())
            throw Error("bench: unknown row '" + name + "' in --only (rows: " + [&] {
                std::string all;
                for (const auto &n : names) all += (all.empty() ? "" : ", ") + n;
                return all;
            }() + ")");
    }
    torch::manual_seed(0);
    bench::Run run{registry, o};
    run.repeats = o.quick ? 2 : 5;
    std::printf("cdrmix bench%s: %d threads\n", o.quick ? " --quick" : "", at::get_num_threads());
    bench::print_row("benchmark", "figure", "baseline (same run)", "ratio");
    for (const auto &g : row_groups()) {
        if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), g.name) == o.only.end()) continue;
        g.run(run);
    }
    return 0;
}

} // namespace cdrmix
