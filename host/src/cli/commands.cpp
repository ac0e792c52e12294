#include "cli/commands.hpp"
#include "cli/chat_command.hpp"
#include "cli/data_commands.hpp"
#include "cli/eval_generate.hpp"
#include "cli/export_command.hpp"
#include "cli/gui_command.hpp"
#include "cli/import_command.hpp"
#include "cli/inspect_command.hpp"
#include "cli/keys_command.hpp"
#include "cli/launch_command.hpp"
#include "cli/plot_command.hpp"
#include "cli/branch_command.hpp"
#include "cli/replay_command.hpp"
#include "cli/sweep_command.hpp"
#include "cli/upcycle_command.hpp"
#include "core/device.hpp"
#include "core/plugin_loader.hpp"
#include "core/presets.hpp"
#include "core/system_info.hpp"
#include "lua/lua_modules.hpp"
#include "sdk/ops/wkv7_chunked.hpp"
#include "lua/lua_util.hpp"
#include "lua/runtime.hpp"
#include "core/yaml_config.hpp"
#include "dist/dist_env.hpp"
#include "metrics/record_fields.hpp"
#include "model/describe.hpp"
#include "bench/bench.hpp"
#include "train/interrupt.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/ops.hpp>
#include <cdrmix/plugin_abi.h>
#include <cdrmix/registry.hpp>
#include <cdrmix/version.hpp>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace cdrmix {

namespace {

struct GlobalOptions {
    std::vector<std::string> plugin_paths;
    int threads = 0;
    std::string device = "cpu";
};

} // namespace

std::string script_file_problem(const std::string &script) {
    std::error_code ec;
    const auto st = std::filesystem::status(script, ec);
    if (std::filesystem::is_regular_file(st)) return "";
    if (!std::filesystem::exists(st)) return "script '" + script + "' not found";
    if (std::filesystem::is_directory(st)) return "script '" + script + "' is a folder; name the .lua file in it";
    return "script '" + script + "' is not a regular file (a device, FIFO or socket); name a .lua file";
}

namespace {

PluginLoader load_plugins(const GlobalOptions &g) {
    lua::register_lua_modules(Registry::global());
    PluginLoader loader(Registry::global());
    loader.load_all(PluginLoader::search_path(g.plugin_paths));
    return loader;
}

void print_problems(const PluginLoader &loader) {
    for (const auto &p : loader.problems()) std::fprintf(stderr, "cdrmix: warning: %s\n", p.message.c_str());
}

// `cdrmix run --stop-after N`: stops the run at step N as the Stop button does (a checkpoint, the
// schedule unchanged), so `cdrmix replay --steps N` re-runs a prefix of a run exactly.
class StopAfterStep : public MetricsSink {
public:
    StopAfterStep(int64_t step, RunControl &control) : step_(step), control_(control) {}
    void write(const Json &record) override {
        if (record.value(fields::event, "") != fields::events::step) return;
        auto it = record.find(fields::step::step);
        if (it != record.end() && it->is_number() && it->get<int64_t>() >= step_) control_.stop = true;
    }

private:
    int64_t step_;
    RunControl &control_;
};

// `cdrmix run`'s own options.
struct RunCommandOptions {
    std::string script, runs_dir = "runs", resume, branch_swap, script_origin;
    std::vector<std::string> overrides;
    bool headless = false;
    int64_t stop_after = 0;
    uint64_t seed = run_environment::kTorchSeed;
};

int cmd_run(const GlobalOptions &g, const RunCommandOptions &o) {
    const std::string &script = o.script, &resume = o.resume, &branch_swap = o.branch_swap;
    if (const std::string problem = script_file_problem(script); !problem.empty()) {
        std::fprintf(stderr, "cdrmix: error: %s\n", problem.c_str());
        return 1;
    }
    Json swap;
    if (!branch_swap.empty()) {
        swap = Json::parse(branch_swap, nullptr, false);
        if (swap.is_discarded() || !swap.is_object()) {
            std::fprintf(stderr, "cdrmix: error: --branch-swap: not a JSON object: %s\n", branch_swap.c_str());
            return 1;
        }
        if (resume.empty() || resume == "auto") {
            std::fprintf(stderr, "cdrmix: error: --branch-swap needs --resume naming the checkpoint the branch starts from\n");
            return 1;
        }
    }
    PluginLoader loader = load_plugins(g);
    print_problems(loader);
    lua::RunOptions opts;
    opts.script = script;
    opts.overrides = o.overrides;
    opts.headless = o.headless;
    opts.runs_root = o.runs_dir;
    opts.plugins = loader.loaded();
    opts.device = resolve_device(Registry::global(), g.device);
    opts.resume = resume;
    opts.branch_swap = std::move(swap);
    opts.script_origin = o.script_origin;
    opts.torch_seed = o.seed;
    lua::Runtime runtime(opts);
    InterruptHandler interrupt(runtime.control());
    if (o.stop_after > 0) runtime.bus().add_sink(std::make_shared<StopAfterStep>(o.stop_after, runtime.control()));
    return runtime.run();
}

int cmd_plugins(const GlobalOptions &g) {
    PluginLoader loader = load_plugins(g);
    std::printf("%-8s %-20s %-10s %s\n", "KIND", "NAME", "VERSION", "FILE");
    for (const auto &f : Registry::global().list())
        std::printf("%-8s %-20s %-10s %s\n", kind_name(f.kind), f.name.c_str(), f.plugin_version.c_str(),
                    f.file.c_str());
    print_problems(loader);
    return loader.problems().empty() ? 0 : 1;
}

int cmd_doctor(const GlobalOptions &g) {
    PluginLoader loader = load_plugins(g);
    int problems = 0;
    auto row = [](const char *key, const std::string &value) { std::printf("  %-10s %s\n", key, value.c_str()); };
    auto problem = [&](const std::string &what, const std::string &fix) {
        std::printf("  PROBLEM    %s\n             fix: %s\n", what.c_str(), fix.c_str());
        ++problems;
    };
    std::printf("cdrmix doctor\n");
    row("cdrmix", std::string(kSdkVersion) + " (plugin ABI " + std::to_string(CDRMIX_ABI_VERSION_MAJOR) + "." +
                      std::to_string(CDRMIX_ABI_VERSION_MINOR) + ")");
    row("LibTorch", torch_version_string() + " (C++11 ABI " + std::to_string(_GLIBCXX_USE_CXX11_ABI) + ")");
    row("threads", std::to_string(at::get_num_threads()) + " intra-op of " +
                       std::to_string(std::thread::hardware_concurrency()) + " hardware threads (set with --threads)");
    if (const char *wait = std::getenv("OMP_WAIT_POLICY"))
        row("OpenMP", std::string("OMP_WAIT_POLICY=") + wait +
                          (std::string(wait) == "passive" ? " (active is faster on an idle machine)"
                                                          : " (spinning threads collapse when cores are shared)"));

    const double gflops = measure_gemm_gflops();
    const BlasInfo blas = detect_blas(); // after the GEMM, so a lazily loaded BLAS is mapped
    row("BLAS", blas.library.empty() ? "none found in the process" : blas.name + ": " + blas.library);
    if (const std::string core = openblas_core(); !core.empty()) {
        const char *env = std::getenv("OPENBLAS_CORETYPE");
        row("OpenBLAS", "kernels for " + core +
                            (env ? std::string(" (OPENBLAS_CORETYPE=") + env + ")" : std::string(" (detected)")));
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f GFLOP/s (float32, 1024^3 matmul)", gflops);
    row("GEMM", buf);
    try {
        row("WKV", std::string("CPU kernels for ") + ops::wkv_cpu_kernel_isa() +
                       " (override with CDRMIX_CPU_KERNELS=baseline|avx2|avx512)");
    } catch (const std::exception &e) {
        problem(e.what(), "unset CDRMIX_CPU_KERNELS or name a set from the list");
    }
    try {
        namespace ch = ops::cpu::chunked;
        row("WKV-7", std::string(ch::wkv7_form_name(ch::wkv7_form())) +
                         " form on CPU (override with CDRMIX_WKV7_FORM=recurrent|chunked)");
    } catch (const std::exception &e) {
        problem(e.what(), "unset CDRMIX_WKV7_FORM or set it to recurrent or chunked");
    }
    if (openblas_pinned_below_cpu())
        problem(std::string("OPENBLAS_CORETYPE=") + std::getenv("OPENBLAS_CORETYPE") +
                    " keeps OpenBLAS on AVX2 kernels although this CPU has AVX-512",
                "unset OPENBLAS_CORETYPE (or set SkylakeX): about 2x the GEMM rate here");
    if (!blas.optimised)
        problem("matrix products use an unoptimised BLAS (about 20-30x slower than OpenBLAS)",
                "apt-get install libopenblas0-openmp");

    for (const auto &f : Registry::global().list()) {
        if (f.kind != PluginKind::Backend) continue;
        try {
            auto b = Registry::global().create_backend(Config(Json{{"type", f.name}}, "doctor", ""));
            const std::string why = b->unavailable_reason();
            std::string line = f.name + ": " + (why.empty() ? "usable, " + std::to_string(b->device_count()) +
                                                                  " device(s), collectives: " + b->collective_backend()
                                                            : "not usable: " + why);
            row("device", line);
        } catch (const std::exception &e) {
            problem("backend " + f.name + " failed to start: " + lua::exception_message(e), "see the plugin's docs");
        }
    }
    row("plugins", std::to_string(loader.loaded().size()) + " loaded, " +
                       std::to_string(Registry::global().list().size()) + " factories (see `cdrmix plugins`)");
    for (const auto &p : loader.problems()) problem(p.message, p.hint);
    std::printf("%s\n", problems == 0 ? "  all good" : ("  " + std::to_string(problems) + " problem(s)").c_str());
    return problems == 0 ? 0 : 1;
}

// The other presets whose total fits the budget at the same batch and length
// with every layer checkpointed (presets without a vocab_size take --vocab-size, else are skipped).
Json presets_within_budget(const std::string &described, DescribeOptions options, int64_t vocab, int64_t seq_len) {
    options.seq_len = seq_len;
    options.checkpointing = {ActivationCheckpointing::Mode::All, 1};
    options.stop_when_over_budget = true;
    Json fits = Json::array();
    for (const auto &name : preset_names()) {
        const std::string path = resolve_preset(name);
        if (std::filesystem::weakly_canonical(path) == std::filesystem::weakly_canonical(described)) continue;
        Json spec = load_yaml_file(path);
        if (vocab > 0) spec["vocab_size"] = vocab;
        if (!spec.contains("vocab_size")) continue;
        const Json r = describe_model(ModelSpec::from_json(spec, path), Registry::global(), options);
        if (r["budget"]["fits"].get<bool>())
            fits.push_back({{"preset", name}, {"total_bytes", r["memory_bytes"]["total"]},
                            {"parameters", r["parameters"]}});
    }
    return fits;
}

int cmd_describe(const GlobalOptions &g, const std::string &preset, const DescribeOptions &options, int64_t vocab,
                 bool json) {
    PluginLoader loader = load_plugins(g);
    print_problems(loader);
    const std::string path = resolve_preset(preset);
    Json spec = load_yaml_file(path);
    if (vocab > 0) spec["vocab_size"] = vocab;
    if (!spec.contains("vocab_size"))
        throw Error(path + ": no vocab_size (the data decides it when training); pass --vocab-size N");
    Json report = describe_model(ModelSpec::from_json(spec, path), Registry::global(), options);
    if (report.contains("budget") && !report["budget"]["fits"].get<bool>())
        report["budget"]["presets_that_fit"] = presets_within_budget(path, options, vocab, report["seq_len"]);
    std::fputs(json ? (report.dump(2) + "\n").c_str() : format_description(report).c_str(), stdout);
    return 0;
}

} // namespace

int cli_main(int argc, char **argv) {
    if (int code = 0; try_launch(argc, argv, &code)) return code;
    CLI::App app{"cdrmix: a workbench for sparse Mixture-of-Experts language models"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("cdrmix ") + kSdkVersion);
    GlobalOptions g;
    app.add_option("--plugin-path", g.plugin_paths, "Extra plugin folder (searched after $CDRMIX_PLUGIN_PATH)");
    app.add_option("--threads", g.threads, "LibTorch intra-op threads (default: all cores)");
    app.add_option("--device", g.device, "Compute device: cpu (default), cuda, cuda:N, rocm, tenstorrent");
    app.fallthrough();

    RunCommandOptions run_options;
    auto *run = app.add_subcommand("run", "Run a Lua experiment script");
    run->add_option("script", run_options.script, "The .lua script")->required();
    run->add_option("overrides", run_options.overrides, "key=value settings for the script's cdrmix.config");
    run->add_flag("--headless", run_options.headless, "One JSON object per log interval on stdout instead of a progress bar");
    run->add_option("--runs-dir", run_options.runs_dir, "Where run directories are created (default: runs)");
    run->add_option("--resume", run_options.resume,
                    "auto (newest checkpoint of an earlier run of the same name) or a checkpoint/run folder");
    run->add_option("--stop-after", run_options.stop_after,
                    "Stop at this step with a checkpoint, as the Stop button does (the schedule is unchanged)")
        ->check(CLI::PositiveNumber);
    run->add_option("--seed", run_options.seed,
                    "LibTorch's start seed: the model's initialisation and every draw before the trainer seeds its "
                    "own (default 0; recorded, so replay uses it; `cdrmix sweep --seeds` sets it)");
    run->add_option("--branch-swap", run_options.branch_swap,
                    "With --resume CHECKPOINT: swap routers right after resuming, as a branch of that run "
                    "(JSON {\"layer\": id or \"all\", \"router\": {...}}; `cdrmix branch` passes it)");
    run->add_option("--script-origin", run_options.script_origin,
                    "Take the script's relative paths (data, Lua modules) as if it were at this path, and record "
                    "that name (`cdrmix replay` and `branch` run a run folder's copy of the script)");
    GuiOptions gui_options;
    auto *gui = add_gui_command(app, gui_options);
    auto *plugins = app.add_subcommand("plugins", "List loaded plugins and their factories");
    auto *doctor = app.add_subcommand("doctor", "Check LibTorch, threads, BLAS, devices and plugins");
    std::string preset;
    DescribeOptions describe_options;
    int64_t vocab = 0;
    bool json = false;
    BenchOptions bench_options;
    auto *bench = app.add_subcommand("bench", "Speed figures, each against a baseline measured in the same run");
    bench->add_flag("--quick", bench_options.quick, "Smaller shapes and fewer repeats");
    bench->add_option("--only", bench_options.only, "Run only these row groups")->delimiter(',');
    auto *describe = app.add_subcommand("describe", "Parameters (total, active, per expert) and memory of a model preset");
    describe->add_option("preset", preset, "A YAML file or a name from configs/models/")->required();
    describe->add_option("--batch-size,--batch", describe_options.batch_size,
                         "Batch size for the memory estimate, per rank (default 1)");
    describe->add_option("--seq-len", describe_options.seq_len, "Sequence length (default: the preset's seq_length)");
    describe->add_option("--dtype", describe_options.dtype, "float32, bfloat16 or float16 (default float32)");
    describe->add_option("--vocab-size", vocab, "Vocabulary size, for presets that take it from the data");
    describe->add_flag("--json", json, "Print the report as JSON");
    std::string budget, checkpoint_activations = "none";
    int64_t checkpoint_every = 2;
    describe->add_option("--budget", budget,
                         "Memory to fit in, e.g. 18GiB: says whether the preset fits and, if not, what would");
    describe->add_option("--checkpoint-activations", checkpoint_activations,
                         "none, all or every_k: the activation estimate under train.checkpoint_activations");
    describe->add_option("--checkpoint-activations-every", checkpoint_every, "every_k: the k (default 2)");
    auto *dp = describe->add_option("--dp", describe_options.dp,
                                    "Data-parallel world size, ranks in total (default 1): adds memory per rank");
    auto *ep = describe->add_option("--ep", describe_options.ep,
                                    "Expert-parallel degree (default 1): each MoE layer's experts split evenly over "
                                    "this many ranks; must divide --dp and every MoE layer's expert count");
    auto *shard = describe->add_flag("--shard-optimizer", describe_options.shard_optimizer,
                                     "ZeRO-1: AdamW state divided over its replicas (dense: --dp ranks, an expert "
                                     "shard: --dp/--ep ranks)");
    describe->add_flag("--expert-at-a-time", describe_options.expert_at_a_time,
                       "train.expert_at_a_time: gradients and AdamW state for one routed expert per MoE layer "
                       "(every expert's weights stay in memory)");
    describe->footer("Per rank: dense parameters are replicated on every rank, a rank holds 1/ep of each MoE "
                     "layer's routed experts, gradients follow the parameters held, and AdamW state does too unless "
                     "--shard-optimizer. --batch-size is per rank, so activations are the estimate for one process "
                     "(tokens received by all-to-all match the local count on average); all-to-all send/receive "
                     "buffers are not counted.");
    KeysOptions keys_options;
    auto *keys = add_keys_command(app, keys_options);
    LaunchOptions launch_options;
    add_launch_command(app, launch_options); // parsed by try_launch above; here for --help
    DataCommands data_commands(app, g.plugin_paths);
    EvalGenerateCommands eval_generate(app);
    ChatCommands chat_commands(app);
    InspectCommand inspect_command(app);
    ImportCommand import_command(app);
    UpcycleCommand upcycle_command(app);
    ExportOptions export_options;
    auto *export_cmd = add_export_command(app, export_options);
    PlotOptions plot_options;
    auto *plot = add_plot_command(app, plot_options);
    ReplayOptions replay_options;
    auto *replay = add_replay_command(app, replay_options);
    BranchOptions branch_options;
    auto *branch = add_branch_command(app, branch_options);
    SweepOptions sweep_options;
    auto *sweep = add_sweep_command(app, sweep_options);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    }
    try {
        configure_threads(g.threads);
        if (*run) return cmd_run(g, run_options);
        if (*plot) return run_plot_command(plot_options);
        if (*replay) return run_replay_command(replay_options, g.plugin_paths, g.threads, g.device);
        if (*branch) return run_branch_command(branch_options, g.plugin_paths, g.threads, g.device);
        if (*sweep) return run_sweep_command(sweep_options, g.plugin_paths, g.threads, g.device);
        // `cdrmix launch -n N gui x.lua`: rank 0 shows the dashboard (it alone gets the records); the others run headless.
        if (*gui && !gui_options.script.empty() && dist_env_from_environment().rank != 0)
        {
            RunCommandOptions headless_rank;
            headless_rank.script = gui_options.script;
            headless_rank.overrides = gui_options.overrides;
            headless_rank.headless = true;
            headless_rank.runs_dir = gui_options.runs_dir;
            return cmd_run(g, headless_rank);
        }
        if (*gui) return run_gui_command(gui_options, g.plugin_paths, g.device);
        if (*plugins) return cmd_plugins(g);
        if (*doctor) return cmd_doctor(g);
        if (*describe) {
            describe_options.per_rank = *dp || *ep || *shard;
            describe_options.checkpointing = ActivationCheckpointing::parse(
                checkpoint_activations, checkpoint_every, "describe: --checkpoint-activations");
            if (!budget.empty()) describe_options.budget_bytes = parse_byte_size(budget, "describe: --budget");
            return cmd_describe(g, preset, describe_options, vocab, json);
        }
        if (*keys) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            return run_keys_command(keys_options, Registry::global());
        }
        if (data_commands.selected()) return data_commands.run();
        if (eval_generate.selected()) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            return eval_generate.run();
        }
        if (chat_commands.selected()) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            return chat_commands.run();
        }
        if (inspect_command.selected()) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            return inspect_command.run();
        }
        if (import_command.selected()) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            return import_command.run();
        }
        if (upcycle_command.selected()) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            return upcycle_command.run();
        }
        if (*export_cmd) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            return run_export_command(export_options, Registry::global());
        }
        if (*bench) {
            PluginLoader loader = load_plugins(g);
            print_problems(loader);
            bench_options.device = resolve_device(Registry::global(), g.device);
            return run_bench(Registry::global(), bench_options);
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cdrmix: error: %s\n", lua::exception_message(e).c_str());
        return 1;
    }
    return 0;
}

} // namespace cdrmix
