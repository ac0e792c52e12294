#include "bench/bench_workloads.hpp"

#include "core/files.hpp"
#include "train/trainer.hpp"

#include <cdrmix/error.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

namespace fs = std::filesystem;

namespace cdrmix::bench {

std::shared_ptr<Model> small_model(const Registry &registry, const Json &mixer, int64_t vocab_size) {
    const Json channel_mix = {{"type", "rwkv_channel_mix"}, {"expansion", 4}};
    const Json spec = {{"name", "bench-" + mixer.value("type", std::string())},
                       {"vocab_size", vocab_size},
                       {"hidden_size", 128},
                       {"num_layers", 4},
                       {"mixer", mixer},
                       {"ffn", channel_mix},
                       {"moe_every", 2},
                       {"num_experts", 4},
                       {"top_k", 2},
                       {"router", {{"type", "topk"}, {"load_balance_alpha", 0.01}, {"z_loss", 0.001}}},
                       {"expert", {{"type", "rwkv_channel_mix"}, {"expansion", 2}}}};
    torch::manual_seed(0);
    return std::make_shared<Model>(ModelSpec::from_json(spec, "bench"), registry);
}

Json rwkv7_mixer() { return {{"type", "rwkv7_time_mix"}, {"head_size", 64}}; }

Json attention_mixer() { return {{"type", "attention"}, {"num_heads", 2}}; }

TempDir::TempDir() {
    std::string pattern = (fs::temp_directory_path() / "cdrmix-bench-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw Error("bench: cannot create a temporary folder under " + fs::temp_directory_path().string());
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    remove_tree(path_, ec);
}

void write_corpus(const std::string &path, int64_t bytes) {
    static const std::vector<std::string> words = {
        "the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as",
        "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but",
        "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an", "each",
        "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then",
        "them", "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look",
        "two", "more", "write", "go", "see", "number", "no", "way", "could", "people", "my", "than", "first",
        "water", "been", "call", "who", "oil", "its", "now", "find", "long", "down", "day", "did", "get",
        "come", "made", "may", "part", "Rome", "Juliet", "King", "Queen", "Hamlet"};
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot write");
    std::mt19937 rng(42);
    std::uniform_int_distribution<size_t> pick(0, words.size() - 1);
    std::uniform_int_distribution<int> roll(0, 99);
    int64_t written = 0;
    int line = 0;
    while (written < bytes) {
        std::string sentence;
        for (int n = 0; n < 12 && roll(rng) < 92; ++n) sentence += (n ? " " : "") + words[pick(rng)];
        if (sentence.empty()) continue;
        sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
        sentence += roll(rng) < 80 ? ". " : roll(rng) < 50 ? "? " : "! ";
        if (++line % 6 == 0) sentence += roll(rng) < 30 ? "\n\n" : "\n";
        out << sentence;
        written += static_cast<int64_t>(sentence.size());
    }
    if (!out.flush()) throw Error(path + ": write failed");
}

namespace {

// Adds up the step records' times, leaving the first step out.
class RateSink : public MetricsSink {
public:
    explicit RateSink(int64_t tokens_per_step) : tokens_per_step_(tokens_per_step) {}
    void write(const Json &r) override {
        if (r.value("event", "") != "step" || r.value("step", int64_t(0)) <= 1) return;
        ++steps_;
        seconds_ += r.value("step_time_s", 0.0);
    }
    TrainingRate rate() const {
        return {steps_, seconds_ > 0 ? double(steps_ * tokens_per_step_) / seconds_ : 0.0};
    }

private:
    int64_t tokens_per_step_, steps_ = 0;
    double seconds_ = 0;
};

} // namespace

TrainingRate train(const TrainingRun &run) {
    if (run.steps < 2) throw Error("bench: a training measurement needs at least 2 steps (the first is not timed)");
    TrainConfig config = TrainConfig::defaults();
    config.steps = run.steps;
    config.batch_size = run.batch_size;
    config.seq_len = run.seq_len;
    config.schedule.lr = 1e-3;
    config.schedule.total_steps = run.steps;
    config.eval_every = 0;
    config.eval_batches = 1;
    MetricsBus bus;
    auto rate = std::make_shared<RateSink>(run.batch_size * run.seq_len);
    bus.add_sink(rate);
    for (const auto &s : run.sinks) bus.add_sink(s);
    Trainer trainer(run.model, run.data, config, bus, "");
    trainer.run();
    return rate->rate();
}

} // namespace cdrmix::bench
