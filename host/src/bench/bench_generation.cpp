// Row 6 of `cdrmix bench`: streaming generation, decoding one token at a time
// through the sampler's path (Decoder + sample_token, as `cdrmix generate`),
// after a short and after a long prompt. An RWKV-7 model carries a fixed-size
// state, so its speed and memory should not depend on the context; an
// attention model of the same size, with its growing KV cache, is the contrast.
#include "bench/bench_table.hpp"
#include "bench/bench_workloads.hpp"
#include "metrics/metrics.hpp"
#include "model/sampler.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <unordered_set>

namespace cdrmix::bench {

namespace {

constexpr int64_t kVocab = 256;
constexpr int64_t kChunk = 16;  // tokens per timed chunk; the median chunk gives the rate
constexpr int64_t kWarmup = 8;  // decoded before timing: first-call costs

// Bytes of the storages the state holds, each counted once: a state tensor that
// is a view of a larger buffer keeps the whole buffer.
int64_t held_bytes(const ModelState &state) {
    std::unordered_set<const void *> seen;
    int64_t bytes = 0;
    for (const auto *blocks : {&state.mixer, &state.ffn})
        for (const auto &block : *blocks)
            for (const auto &t : block)
                if (t.defined() && seen.insert(t.storage().unsafeGetStorageImpl()).second)
                    bytes += static_cast<int64_t>(t.storage().nbytes());
    return bytes;
}

// One sequence being generated: a prompt of `context` random tokens prefilled,
// then sampled tokens decoded in timed chunks.
class Stream {
public:
    Stream(Model &model, int64_t context) : decoder_(model), gen_(at::detail::createCPUGenerator(7)) {
        opts_.temperature = 0.8; // `cdrmix generate`'s default
        torch::manual_seed(3);
        const torch::Tensor prompt = torch::randint(0, kVocab, {context}, torch::kInt64);
        logits_ = decoder_.prefill({prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + context});
        decode(kWarmup);
    }
    void time_chunk() {
        const auto t0 = std::chrono::steady_clock::now();
        decode(kChunk);
        chunk_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    double tokens_per_s() const {
        std::vector<double> t = chunk_seconds_;
        std::sort(t.begin(), t.end());
        return double(kChunk) / t[t.size() / 2];
    }
    int64_t state_bytes() const { return held_bytes(decoder_.state()); }

private:
    void decode(int64_t n) {
        for (int64_t i = 0; i < n; ++i) logits_ = decoder_.step(sample_token(logits_, opts_, gen_));
    }
    Decoder decoder_;
    SampleOptions opts_;
    torch::Generator gen_;
    torch::Tensor logits_;
    std::vector<double> chunk_seconds_;
};

std::string kib(int64_t bytes) { return format("%.1f KiB", double(bytes) / 1024.0); }

// The two contexts decode in alternating chunks, so a change in the machine's
// load falls on both alike.
void model_rows(Run &run, const std::string &label, const Json &mixer, bool headline, int64_t short_ctx,
                int64_t long_ctx, int64_t tokens) {
    auto model = small_model(run.registry, mixer, kVocab);
    Stream s(*model, short_ctx), l(*model, long_ctx);
    const double rss_before = process_rss_mb();
    for (int64_t done = 0; done < tokens; done += kChunk) {
        s.time_chunk();
        l.time_chunk();
    }
    const double rss_growth = process_rss_mb() - rss_before;
    const std::string ctx = ", ctx " + std::to_string(long_ctx), short_name = "ctx " + std::to_string(short_ctx);
    print_row(std::string(headline ? "6 " : "  ") + label + " decode" + ctx, format("%.0f tok/s", l.tokens_per_s()),
              short_name + format(" %.0f tok/s", s.tokens_per_s()),
              format("%.2f", l.tokens_per_s() / s.tokens_per_s()) + (headline ? " (target >= 0.9)" : ""));
    print_row("  " + label + " state carried" + ctx, kib(l.state_bytes()), short_name + " " + kib(s.state_bytes()),
              format("%.2fx", double(l.state_bytes()) / double(s.state_bytes())) + (headline ? " (target 1.00x)" : ""));
    print_row("  " + label + " RSS growth, " + std::to_string(tokens) + " tokens each",
              format("%+.1f MB", rss_growth), "-", "-");
}

} // namespace

void generation_rows(Run &run) {
    const int64_t short_ctx = 128, long_ctx = run.options.quick ? 2048 : 8192;
    const int64_t tokens = run.options.quick ? 64 : 256;
    model_rows(run, "RWKV-7", rwkv7_mixer(), true, short_ctx, long_ctx, tokens);
    model_rows(run, "attention", attention_mixer(), false, short_ctx, long_ctx, tokens);
}

} // namespace cdrmix::bench
