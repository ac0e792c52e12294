// Row 9 of `cdrmix bench`: data parallelism on this machine.
//   - Weak scaling: 2 ranks x 1 thread against 1 rank x 1 thread at the same
//     per-rank batch (cdrmix-small): tokens/s per rank, their ratio, and the
//     share of step time spent waiting on communication.
//   - The all-reduce's bus bandwidth (2 ranks, Gloo over loopback) against a
//     plain memory copy of the same bytes.
//   - Expert parallelism: an 8-expert model on 2 ranks with the experts split
//     over both (E_p = 2) against each rank holding all 8 (E_p = 1): step time
//     and the bytes of weights, gradients and AdamW state each rank holds.
// Ranks are threads of this process, each with its own process group over
// loopback (the same TCPStore + Gloo path as separate processes; one address
// space, so no page sharing between ranks is saved or lost).
#include "bench/bench_table.hpp"
#include "bench/bench_workloads.hpp"
#include "dist/expert_parallel.hpp"
#include "dist/thread_ranks.hpp"
#include "metrics/record_fields.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <mutex>

namespace cdrmix::bench {

namespace {

// Per-rank tokens/s and the communication share of the step records after the first (warm-up) step
// (rank 0's bus, written from rank 0's thread only).
class ScalingSink : public MetricsSink {
public:
    void write(const Json &rec) override {
        namespace f = fields::step;
        if (rec.value(fields::event, "") != fields::events::step || rec[f::step].get<int64_t>() == 1) return;
        const double time = rec[f::step_time_s].get<double>();
        step_time += time;
        comm += rec.value(f::comm_s, 0.0);
        if (rec.contains(f::ranks)) {
            double sum = 0;
            for (const auto &r : rec[f::ranks]) sum += r[fields::rank::tokens_per_s].get<double>();
            per_rank_rate += sum / double(rec[f::ranks].size());
        } else {
            per_rank_rate += double(tokens_per_step) / time;
        }
        ++steps;
    }
    int64_t tokens_per_step = 0;
    double step_time = 0, comm = 0, per_rank_rate = 0;
    int64_t steps = 0;
};

struct Scaling {
    double tokens_per_s_per_rank = 0;
    double comm_share = 0;
    double step_s = 0;
    int64_t held_bytes = 0; // rank 0's weights, gradients and AdamW state
};

// The expert-parallel workload: 4 layers of width 256, every FFN an MoE of 8
// RWKV channel-mix experts (top-2), so the experts hold most of the weights.
Json eight_expert_spec(int64_t vocab_size, int64_t expert_parallel) {
    return {{"name", "bench-8-experts"}, {"vocab_size", vocab_size},  {"hidden_size", 256},
            {"num_layers", 4},           {"mixer", rwkv7_mixer()},    {"moe_every", 1},
            {"num_experts", 8},          {"top_k", 2},                {"expert_parallel", expert_parallel},
            {"router", {{"type", "topk"}, {"load_balance_alpha", 0.01}}},
            {"expert", {{"type", "rwkv_channel_mix"}, {"expansion", 4}}}};
}

// moe_spec: null for cdrmix-small; else a spec whose expert_parallel the ranks follow.
Scaling train_on(Run &run, int world, const std::string &corpus, int64_t batch, int64_t seq_len, int64_t steps,
                 const std::function<Json(int64_t vocab)> &moe_spec = nullptr) {
    std::vector<std::shared_ptr<DataSource>> data;
    std::vector<std::shared_ptr<Model>> models(size_t(world), nullptr);
    for (int r = 0; r < world; ++r) {
        data.push_back(run.registry.create_data_source(Config(
            {{"type", "text"}, {"path", corpus}, {"tokenizer", "char"}, {"rank", r}, {"world_size", world}},
            "bench dist data", "")));
        if (!moe_spec) models[size_t(r)] = small_model(run.registry, rwkv7_mixer(), data.back()->tokenizer()->vocab_size());
    }
    std::mutex building; // ranks are threads: one model at a time, each from the same seed
    TrainConfig config = TrainConfig::defaults();
    config.steps = steps;
    config.batch_size = batch;
    config.seq_len = seq_len;
    config.schedule.lr = 1e-3;
    config.schedule.total_steps = steps;
    config.eval_every = 0;
    config.eval_batches = 1;
    auto sink = std::make_shared<ScalingSink>();
    sink->tokens_per_step = batch * seq_len;
    std::vector<std::unique_ptr<MetricsBus>> buses;
    for (int r = 0; r < world; ++r) buses.push_back(std::make_unique<MetricsBus>());
    buses[0]->add_sink(sink); // every rank publishes the same records: rank 0's are enough
    int64_t held_bytes = 0;
    auto body = [&](ProcessGroup &group) {
        const size_t r = size_t(group.rank());
        if (moe_spec) {
            const ModelSpec spec = ModelSpec::from_json(moe_spec(data[r]->tokenizer()->vocab_size()), "bench");
            std::shared_ptr<ExpertParallel> experts;
            if (spec.expert_parallel > 1 && world > 1) experts = std::make_shared<ExpertParallel>(group, spec.expert_parallel);
            std::lock_guard<std::mutex> lock(building);
            torch::manual_seed(0);
            models[r] = std::make_shared<Model>(spec, run.registry, experts);
        }
        Trainer trainer(models[r], data[r], config, *buses[r], "");
        trainer.set_process_group(&group);
        trainer.run();
        if (r == 0) {
            for (const auto &p : models[r]->parameters()) held_bytes += 2 * p.numel() * int64_t(p.element_size());
            held_bytes += trainer.optimizer_state_bytes();
        }
    };
    if (world == 1) {
        ProcessGroup alone(DistEnv{}, std::chrono::seconds(5));
        body(alone);
    } else {
        run_thread_ranks(world, 0, std::chrono::seconds(120), body);
    }
    if (sink->steps == 0) throw Error("bench dist: no timed steps");
    return {sink->per_rank_rate / double(sink->steps), sink->comm / sink->step_time,
            sink->step_time / double(sink->steps), held_bytes};
}

// Seconds per all-reduce of `bytes` of float32 on 2 ranks (median), and per copy of the same bytes.
std::pair<double, double> all_reduce_and_copy_seconds(int64_t bytes, int repeats) {
    const int64_t n = bytes / 4;
    double reduce = 0;
    run_thread_ranks(2, 0, std::chrono::seconds(120), [&](ProcessGroup &group) {
        torch::Tensor t = torch::ones({n});
        const double s = median_seconds([&] { group.all_reduce(t, ReduceOp::Sum); }, repeats);
        if (group.rank() == 0) reduce = s;
    });
    torch::Tensor src = torch::ones({n}), dst = torch::empty({n});
    const double copy = median_seconds([&] { dst.copy_(src); }, repeats);
    return {reduce, copy};
}

} // namespace

void dist_rows(Run &run) {
    const int threads = at::get_num_threads();
    at::set_num_threads(1); // each rank one thread, as its baseline
    try {
        TempDir dir;
        const std::string corpus = dir.file("corpus.txt");
        write_corpus(corpus, 1 << 20);
        const int64_t batch = run.options.quick ? 4 : 8, seq_len = 256, steps = run.options.quick ? 3 : 6;
        const Scaling one = train_on(run, 1, corpus, batch, seq_len, steps);
        const Scaling two = train_on(run, 2, corpus, batch, seq_len, steps);
        const std::string shape = "cdrmix-small B" + std::to_string(batch) + " T" + std::to_string(seq_len) + " per rank";
        print_row("9 data parallel, 2 ranks x 1 thread, " + shape, format("%.0f tok/s per rank", two.tokens_per_s_per_rank),
                  format("1 rank x 1 thread %.0f tok/s", one.tokens_per_s_per_rank),
                  format("%.2fx", two.tokens_per_s_per_rank / one.tokens_per_s_per_rank) +
                      format(" (comm %.1f%% of step)", 100 * two.comm_share));

        const int64_t bytes = run.options.quick ? (16 << 20) : (64 << 20);
        const auto [reduce, copy] = all_reduce_and_copy_seconds(bytes, run.repeats);
        // Bus bandwidth (as nccl-tests): a ring all-reduce moves 2 (n-1)/n of the buffer per rank.
        const double bus = 2.0 * (2 - 1) / 2 * double(bytes) / reduce / 1e9, mem = double(bytes) / copy / 1e9;
        print_row("  all-reduce " + std::to_string(bytes >> 20) + " MiB float32, 2 ranks, Gloo over loopback",
                  format("%.2f GB/s bus", bus), format("memcpy %.2f GB/s", mem), format("%.2fx", bus / mem));

        auto experts_over = [](int64_t p) { return [p](int64_t vocab) { return eight_expert_spec(vocab, p); }; };
        const Scaling whole = train_on(run, 2, corpus, batch, seq_len, steps, experts_over(1));
        const Scaling split = train_on(run, 2, corpus, batch, seq_len, steps, experts_over(2));
        const std::string ep_shape = "8 experts, C256 L4, B" + std::to_string(batch) + " T" + std::to_string(seq_len);
        print_row("  expert parallel 2 vs 1, 2 ranks, " + ep_shape + ": step time",
                  format("%.1f ms", 1e3 * split.step_s) + format(" (comm %.1f%%)", 100 * split.comm_share),
                  format("E_p=1 %.1f ms", 1e3 * whole.step_s) + format(" (comm %.1f%%)", 100 * whole.comm_share),
                  format("%.2fx", whole.step_s / split.step_s));
        print_row("  ... weights + gradients + AdamW state per rank",
                  format("%.1f MiB", double(split.held_bytes) / (1 << 20)),
                  format("E_p=1 %.1f MiB", double(whole.held_bytes) / (1 << 20)),
                  format("%.2fx", double(split.held_bytes) / double(whole.held_bytes)));
    } catch (...) {
        at::set_num_threads(threads);
        throw;
    }
    at::set_num_threads(threads);
}

} // namespace cdrmix::bench
