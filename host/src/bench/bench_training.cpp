#include "bench/bench_training.hpp"
#include "bench/wkv_inputs.hpp"
#include "core/memory_tracker.hpp"
#include "core/system_info.hpp"
#include "core/yaml_config.hpp"
#include "metrics/metrics.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/window_source.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>

#include <sys/wait.h>

namespace cdrmix::bench {

namespace fs = std::filesystem;

fs::path source_file(const std::string &relative) {
    const char *env = std::getenv("CDRMIX_SOURCE_DIR");
    return fs::path(env && *env ? env : CDRMIX_SOURCE_DIR) / relative;
}

namespace {

// Uniformly random token ids (a fixed seed), enough that the train split never
// repeats a window within a benchmark.
std::shared_ptr<DataSource> random_token_source(int64_t vocab, int64_t seq) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(vocab - 1));
    auto tokens = [&](int64_t n) {
        std::vector<uint32_t> ids(static_cast<size_t>(n));
        for (auto &id : ids) id = pick(rng);
        return tokens_in_memory(std::move(ids));
    };
    WindowSourceParts parts;
    parts.type = "bench";
    parts.where = "bench data";
    parts.description = "random tokens in memory";
    parts.train = tokens(std::max<int64_t>(1 << 20, 256 * (seq + 1)));
    parts.val = tokens(4 * (seq + 1));
    parts.tokenizer = make_id_tokenizer(vocab);
    return make_window_source(std::move(parts));
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}


// Runs a shell command; returns its exit status and everything it printed.
std::pair<int, std::string> run_command(const std::string &command) {
    std::string out;
    FILE *pipe = popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return {-1, "cannot start a shell"};
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
    const int status = pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string last_line(const std::string &text) {
    std::string s = text;
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    const auto nl = s.find_last_of('\n');
    return nl == std::string::npos ? s : s.substr(nl + 1);
}

std::string shell_quoted(const std::string &s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// ---- row 4 -------------------------------------------------------------------------

// nanoGPT's CPU shape, as a cdrmix model: attention mixer, squared-ReLU 4x FFN, LayerNorm.
struct NanoGpt {
    int64_t layers = 4, heads = 4, width = 128, ffn_expansion = 4;
    Json spec() const {
        return {{"name", "nanogpt"},
                {"hidden_size", width},
                {"num_layers", layers},
                {"norm", "layernorm"},
                {"mixer", {{"type", "attention"}, {"num_heads", heads}}},
                {"ffn", {{"type", "relu2"}, {"expansion", ffn_expansion}}}};
    }
};

// The Python baseline's interpreter and script; empty `skip` when both are usable.
struct PythonBaseline {
    std::string python, script, skip;
};

PythonBaseline find_python_baseline() {
    PythonBaseline b;
    const char *env = std::getenv("CDRMIX_PYTHON");
    b.python = env && *env ? env : "/usr/bin/python3";
    b.script = source_file("host/src/bench/python/nanogpt.py").string();
    if (!fs::is_regular_file(b.script))
        b.skip = "no " + b.script + " (set CDRMIX_SOURCE_DIR to the source tree)";
    else if (run_command(shell_quoted(b.python) + " -c 'import torch'").first != 0)
        b.skip = b.python + " cannot import torch (apt install python3-torch)";
    return b;
}

// Python tokens/s and parameter count, or a reason it did not run.
struct PythonFigure {
    double tokens_per_s = 0;
    int64_t parameters = 0;
    std::string error;
};

PythonFigure run_python(const PythonBaseline &b, const NanoGpt &g, const TrainConfig &t, const TrainingShape &s) {
    std::string cmd = shell_quoted(b.python) + " " + shell_quoted(b.script);
    auto arg = [&](const char *name, double v) { cmd += std::string(" --") + name + " " + format("%.17g", v); };
    arg("threads", at::get_num_threads());
    arg("steps", s.timed_steps);
    arg("warmup", s.warmup_steps);
    arg("batch", double(s.batch));
    arg("seq", double(s.seq));
    arg("vocab", double(s.vocab));
    arg("layers", double(g.layers));
    arg("heads", double(g.heads));
    arg("width", double(g.width));
    arg("ffn-expansion", double(g.ffn_expansion));
    arg("lr", t.schedule.lr);
    arg("min-lr", t.schedule.min_lr);
    arg("lr-warmup", double(t.schedule.warmup_steps));
    arg("weight-decay", t.weight_decay);
    arg("beta1", t.beta1);
    arg("beta2", t.beta2);
    arg("eps", t.eps);
    arg("grad-clip", t.grad_clip);
    const auto [status, out] = run_command(cmd);
    PythonFigure f;
    try {
        if (status != 0) throw Error("exit status " + std::to_string(status));
        const Json j = Json::parse(last_line(out));
        f.tokens_per_s = j.at("tokens_per_s").get<double>();
        f.parameters = j.at("params").get<int64_t>();
    } catch (const std::exception &e) {
        f.error = "python baseline failed (" + std::string(e.what()) + "): " + last_line(out);
    }
    return f;
}

// ---- the measurement ----------------------------------------------------------------

// The Trainer settings both rows (and the Python baseline) use.
TrainConfig bench_train_config(const TrainingShape &s) {
    TrainConfig t = TrainConfig::defaults();
    t.steps = s.warmup_steps + s.timed_steps;
    t.batch_size = s.batch;
    t.seq_len = s.seq;
    t.schedule.lr = 1e-3;
    t.schedule.min_lr = 1e-4;
    t.schedule.warmup_steps = 2;
    t.schedule.total_steps = t.steps;
    t.eval_every = 0; // only the one evaluation at the end, after the timed steps
    t.eval_batches = 1;
    t.checkpoint_activations = s.checkpointing;
    t.weights_dtype = s.weights_dtype;
    return t;
}

} // namespace

TrainingFigure measure_training(const Registry &registry, Json model_spec, const TrainingShape &shape) {
    model_spec["vocab_size"] = shape.vocab;
    const int64_t live_before = MemoryTracker::live_bytes();
    MemoryTracker::reset_peak();
    torch::manual_seed(0);
    auto model = std::make_shared<Model>(ModelSpec::from_json(model_spec, "bench"), registry);
    MetricsBus bus;
    Trainer trainer(model, random_token_source(shape.vocab, shape.seq), bench_train_config(shape), bus, "");
    std::vector<double> step_times;
    TrainCallbacks callbacks;
    callbacks.on_step = [&](const Json &record) {
        if (record["step"].get<int64_t>() > shape.warmup_steps) step_times.push_back(record["step_time_s"].get<double>());
        return true;
    };
    trainer.run(callbacks);
    TrainingFigure f;
    f.step_seconds = median(step_times);
    f.tokens_per_s = double(shape.batch * shape.seq) / f.step_seconds;
    f.parameters = model->num_parameters();
    f.flops_per_token = training_flops_per_token(*model);
    f.peak_bytes = MemoryTracker::peak_bytes() - live_before;
    return f;
}

double training_flops_per_token(const Model &model) {
    double weights = 0, wkv = 0;
    const int64_t C = model.spec().hidden_size;
    for (const auto &layer : model.named_children()["blocks"]->children()) {
        for (const auto &child : layer->named_children()) {
            const auto *block = dynamic_cast<const Block *>(child.value().get());
            if (!block) continue; // the norms
            int64_t all = 0, matrices = 0;
            for (const auto &p : block->parameters()) {
                all += p.numel();
                if (p.dim() == 2) matrices += p.numel();
            }
            // What a token does not use (an MoE's unvisited experts) is all expert matrices.
            weights += double(matrices - (all - block->active_parameters()));
        }
    }
    for (const auto &layer : model.spec().layers) {
        const std::string type = layer.mixer.config.value("type", "");
        if (type != "rwkv7_time_mix" && type != "rwkv6_time_mix") continue;
        const int64_t N = layer.mixer.config.value("head_size", int64_t(64));
        wkv += wkv_flops(type == "rwkv7_time_mix", 1, 1, C / N, N);
    }
    weights += double(model.spec().vocab_size * C); // the head
    return 6.0 * weights + wkv;
}

// ---- the rows ----------------------------------------------------------------------

void nanogpt_row(Run &run) {
    const NanoGpt gpt;
    TrainingShape shape; // nanoGPT's CPU shape: batch 12, context 64, vocabulary 65
    shape.warmup_steps = run.options.quick ? 1 : 3;
    shape.timed_steps = run.options.quick ? 4 : 20;
    const std::string name = "4 GPT L4 H4 C128 T64 B12 training tokens/s";
    const PythonBaseline python = find_python_baseline();
    // Rounds in alternating order, best of each side: a neighbour's burst of
    // work on shared cores hurts whichever side it lands on, not one side always.
    const int rounds = run.options.quick ? 1 : 3;
    TrainingFigure best;
    PythonFigure best_python;
    for (int round = 0; round < rounds; ++round) {
        auto measure_cdrmix = [&] {
            const TrainingFigure f = measure_training(run.registry, gpt.spec(), shape);
            if (f.tokens_per_s > best.tokens_per_s) best = f;
        };
        auto measure_python = [&] {
            if (!python.skip.empty() || !best_python.error.empty()) return;
            const PythonFigure f = run_python(python, gpt, bench_train_config(shape), shape);
            if (!f.error.empty() || f.tokens_per_s > best_python.tokens_per_s) best_python = f;
        };
        if (round % 2 == 0) {
            measure_cdrmix();
            measure_python();
        } else {
            measure_python();
            measure_cdrmix();
        }
    }
    if (best.tokens_per_s > run.train_tokens_per_s) {
        run.train_tokens_per_s = best.tokens_per_s;
        run.train_tokens_label = "row 4 (GPT, B" + std::to_string(shape.batch) + " T" + std::to_string(shape.seq) + ")";
    }
    const std::string figure = format("cdrmix %.0f tok/s", best.tokens_per_s);
    if (!python.skip.empty()) {
        print_row(name, figure, "python: skipped", python.skip);
    } else if (!best_python.error.empty()) {
        print_row(name, figure, "python: failed", best_python.error);
    } else if (best_python.parameters != best.parameters) {
        print_row(name, figure, format("python %.0f tok/s", best_python.tokens_per_s),
                  "FAILED: parameter counts differ (cdrmix " + std::to_string(best.parameters) + ", python " +
                      std::to_string(best_python.parameters) + ")");
    } else {
        print_row(name, figure, format("python %.0f tok/s", best_python.tokens_per_s),
                  format("%.2fx python", best.tokens_per_s / best_python.tokens_per_s) + " (" +
                      std::to_string(best.parameters) + " params each)");
    }
}

void mfu_row(Run &run) {
    if (run.gemm_gflops <= 0) run.gemm_gflops = measure_gemm_gflops(run.options.quick ? 1024 : 2048, run.repeats);
    const fs::path preset = source_file("configs/models/cdrmix-small.yaml");
    TrainingShape shape;
    shape.vocab = 65;
    shape.batch = run.options.quick ? 4 : 16;
    shape.seq = run.options.quick ? 64 : 256;
    // A full-size step takes seconds to tens of seconds on a few cores: one warm-up, three timed.
    shape.warmup_steps = 1;
    shape.timed_steps = run.options.quick ? 2 : 3;
    const int64_t width = run.options.quick ? 256 : 512;
    const std::string name = "5 MFU cdrmix-small C" + std::to_string(width) + " T" + std::to_string(shape.seq) + " B" +
                             std::to_string(shape.batch) + " training";
    if (!fs::is_regular_file(preset)) {
        print_row(name, "skipped", "-", "no " + preset.string() + " (set CDRMIX_SOURCE_DIR to the source tree)");
        return;
    }
    Json spec = load_yaml_file(preset.string());
    spec["hidden_size"] = width;
    spec["seq_length"] = shape.seq;
    const TrainingFigure f = measure_training(run.registry, spec, shape);
    if (f.tokens_per_s > run.train_tokens_per_s) {
        run.train_tokens_per_s = f.tokens_per_s;
        run.train_tokens_label = "row 5 (cdrmix-small, B" + std::to_string(shape.batch) + " T" + std::to_string(shape.seq) + ")";
    }
    const double gflops = f.flops_per_token * f.tokens_per_s / 1e9;
    print_row(name, format("%.1f GFLOP/s", gflops) + format(" (%.0f tok/s)", f.tokens_per_s),
              format("GEMM %.1f GFLOP/s", run.gemm_gflops), format("%.1f%% of peak", 100.0 * gflops / run.gemm_gflops));
}

// Row 10: the Lua top-k router (experiments/modules/topk_router.lua, the same
// decisions and losses as the C++ topk router) in the quickstart's model and
// shape, against the C++ router; then route() alone, forward and backward, to
// show where the difference goes.
void lua_router_row(Run &run) {
    const fs::path module = source_file("experiments/modules/topk_router.lua");
    const fs::path preset = source_file("configs/models/cdrmix-small.yaml");
    TrainingShape shape;
    shape.batch = run.options.quick ? 4 : 16;
    shape.seq = run.options.quick ? 64 : 128;
    shape.warmup_steps = 2;
    shape.timed_steps = run.options.quick ? 3 : 12;
    const std::string name = "10 Lua top-k router, cdrmix-small B" + std::to_string(shape.batch) + " T" +
                             std::to_string(shape.seq) + " training";
    if (!fs::is_regular_file(module) || !fs::is_regular_file(preset)) {
        print_row(name, "skipped", "-", "no " + module.string() + " (set CDRMIX_SOURCE_DIR to the source tree)");
        return;
    }
    Json cpp = load_yaml_file(preset.string());
    cpp["seq_length"] = shape.seq;
    Json lua = cpp;
    lua["router"] = {{"type", "lua"}, {"file", module.string()}};
    // Alternating rounds, best of each: a neighbour's burst hurts whichever side it lands on.
    TrainingFigure best_cpp, best_lua;
    for (int round = 0; round < (run.options.quick ? 1 : 2); ++round)
        for (int side = 0; side < 2; ++side) {
            const bool is_lua = (side + round) % 2 == 1;
            const TrainingFigure f = measure_training(run.registry, is_lua ? lua : cpp, shape);
            TrainingFigure &best = is_lua ? best_lua : best_cpp;
            if (f.tokens_per_s > best.tokens_per_s) best = f;
        }
    const double cost = 1.0 - best_lua.tokens_per_s / best_cpp.tokens_per_s;
    print_row(name, format("lua %.0f tok/s", best_lua.tokens_per_s), format("C++ topk %.0f tok/s", best_cpp.tokens_per_s),
              format("%.3fx", best_lua.tokens_per_s / best_cpp.tokens_per_s) + format(" (%.1f%% of a step)", 100.0 * cost));

    // One route() of a step's tokens, forward and backward, for each router.
    const int64_t C = cpp.value("hidden_size", int64_t(128)), E = cpp.value("num_experts", int64_t(4));
    const int64_t k = cpp.value("top_k", int64_t(2)), N = shape.batch * shape.seq;
    auto route_seconds = [&](const Json &router) {
        torch::manual_seed(1);
        auto r = run.registry.create_router(Config(router, "bench", ""), RouterContext{C, E, k, 1});
        r->train();
        const torch::Tensor x = torch::randn({N, C}, torch::requires_grad());
        return median_seconds(
            [&] {
                auto out = r->route(x, {});
                torch::Tensor total = out.weights.sum();
                for (const auto &l : out.losses) total = total + l.value;
                total.backward();
            },
            run.repeats * 4);
    };
    const double t_cpp = route_seconds(cpp["router"]), t_lua = route_seconds(lua["router"]);
    print_row("   route() fwd+bwd N" + std::to_string(N) + " C" + std::to_string(C) + " E" + std::to_string(E) +
                  " k" + std::to_string(k),
              format("lua %.3f ms", t_lua * 1e3), format("C++ topk %.3f ms", t_cpp * 1e3),
              format("+%.3f ms per MoE layer call", (t_lua - t_cpp) * 1e3));
}

// Row 11: activation checkpointing of every layer against none, in the
// quickstart's model (cdrmix-small) at a longer sequence: training tokens/s and
// the peak of live CPU bytes, both runs under one memory tracker.
void checkpoint_row(Run &run) {
    const fs::path preset = source_file("configs/models/cdrmix-small.yaml");
    TrainingShape shape;
    shape.batch = run.options.quick ? 4 : 16;
    shape.seq = run.options.quick ? 64 : 256;
    shape.warmup_steps = 2;
    shape.timed_steps = run.options.quick ? 3 : 8;
    const std::string name = "11 checkpoint_activations all, cdrmix-small B" + std::to_string(shape.batch) + " T" +
                             std::to_string(shape.seq);
    if (!fs::is_regular_file(preset)) {
        print_row(name, "skipped", "-", "no " + preset.string() + " (set CDRMIX_SOURCE_DIR to the source tree)");
        return;
    }
    Json spec = load_yaml_file(preset.string());
    spec["seq_length"] = shape.seq;
    MemoryTracker tracker;
    const TrainingFigure plain = measure_training(run.registry, spec, shape);
    shape.checkpointing = {ActivationCheckpointing::Mode::All, 1};
    const TrainingFigure all = measure_training(run.registry, spec, shape);
    const double MiB = 1024.0 * 1024.0;
    print_row(name + " tok/s", format("all %.0f tok/s", all.tokens_per_s), format("none %.0f tok/s", plain.tokens_per_s),
              format("%.2fx the time per token", plain.tokens_per_s / all.tokens_per_s));
    print_row("   peak CPU memory of the run", format("all %.1f MiB", double(all.peak_bytes) / MiB),
              format("none %.1f MiB", double(plain.peak_bytes) / MiB),
              format("%.2fx", double(all.peak_bytes) / double(plain.peak_bytes)));
}

// Row 12: bf16 weights with float32 masters against float32 weights, in the
// quickstart's model (cdrmix-small) at row 11's shape: training tokens/s and
// the peak of live CPU bytes (weights, masters, moments, activations), both
// runs under one memory tracker.
void bf16_weights_row(Run &run) {
    const fs::path preset = source_file("configs/models/cdrmix-small.yaml");
    TrainingShape shape;
    shape.batch = run.options.quick ? 4 : 16;
    shape.seq = run.options.quick ? 64 : 256;
    shape.warmup_steps = 2;
    shape.timed_steps = run.options.quick ? 3 : 8;
    const std::string name = "12 weights_dtype bfloat16, cdrmix-small B" + std::to_string(shape.batch) + " T" +
                             std::to_string(shape.seq);
    if (!fs::is_regular_file(preset)) {
        print_row(name, "skipped", "-", "no " + preset.string() + " (set CDRMIX_SOURCE_DIR to the source tree)");
        return;
    }
    Json spec = load_yaml_file(preset.string());
    spec["seq_length"] = shape.seq;
    MemoryTracker tracker;
    const TrainingFigure fp32 = measure_training(run.registry, spec, shape);
    shape.weights_dtype = "bfloat16";
    const TrainingFigure bf16 = measure_training(run.registry, spec, shape);
    const double MiB = 1024.0 * 1024.0;
    print_row(name + " tok/s", format("bf16 %.0f tok/s", bf16.tokens_per_s),
              format("float32 %.0f tok/s", fp32.tokens_per_s),
              format("%.2fx the time per token", fp32.tokens_per_s / bf16.tokens_per_s));
    print_row("   peak CPU memory of the run", format("bf16 %.1f MiB", double(bf16.peak_bytes) / MiB),
              format("float32 %.1f MiB", double(fp32.peak_bytes) / MiB),
              format("%.2fx", double(bf16.peak_bytes) / double(fp32.peak_bytes)));
}

} // namespace cdrmix::bench
