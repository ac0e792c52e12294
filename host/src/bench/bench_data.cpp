// Row 7 of `cdrmix bench`: tokens/s of the data sources training reads (text
// with the char tokenizer, JSONL, a uint16 token file), each alone at the
// training shape, against the tokens/s the training loop consumes. A pipeline
// well ahead of training (target 20x) never makes a step wait for its batch.
#include "bench/bench_table.hpp"
#include "bench/bench_workloads.hpp"
#include "bench/data_throughput.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>
#include <cdrmix/token_sequence.hpp>
#include <cdrmix/tokenizer.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace cdrmix::bench {

namespace {

constexpr int64_t kBatch = 16, kSeqLen = 256; // the training shape of the table's training rows

std::string read_text(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The corpus as JSONL, one {"text"} record per paragraph.
void write_jsonl(const std::string &text, const std::string &path) {
    AtomicFileWriter out(path);
    for (size_t at = 0; at < text.size();) {
        const size_t gap = text.find("\n\n", at);
        const size_t end = gap == std::string::npos ? text.size() : gap + 2;
        out.write(Json{{"text", text.substr(at, end - at)}}.dump() + "\n");
        at = end;
    }
    out.commit();
}

// The corpus as uint16 char-tokenizer ids, with the tokenizer beside it.
void write_tokens(const std::string &text, const std::string &path, const std::string &tokenizer_path) {
    auto tokenizer = make_char_tokenizer(text);
    save_tokenizer_file(*tokenizer, tokenizer_path);
    TokenFileWriter writer(path, TokenDtype::U16);
    writer.write(tokenizer->encode(text));
    writer.commit();
}

struct SourceRate {
    std::string name;
    double tokens_per_s = 0;
};

// The training loop's tokens/s: the training rows' figure, or a short run of
// the stock Trainer at the same shape when those rows were not run.
std::pair<double, std::string> training_consumption(Run &run, const std::shared_ptr<DataSource> &data) {
    if (run.train_tokens_per_s > 0) return {run.train_tokens_per_s, run.train_tokens_label};
    TrainingRun t;
    t.model = small_model(run.registry, rwkv7_mixer(), data->tokenizer()->vocab_size());
    t.data = data;
    t.steps = run.options.quick ? 3 : 5;
    t.batch_size = kBatch;
    t.seq_len = kSeqLen;
    const TrainingRate r = train(t);
    return {r.tokens_per_s, "cdrmix-small B" + std::to_string(kBatch) + " T" + std::to_string(kSeqLen) + ", " +
                                std::to_string(r.steps) + " timed steps"};
}

} // namespace

void data_rows(Run &run) {
    const double seconds = run.options.quick ? 0.5 : 2.0;
    TempDir dir;
    const std::string txt = dir.file("corpus.txt"), jsonl = dir.file("corpus.jsonl"), bin = dir.file("corpus.bin"),
                      tok = dir.file("corpus.tokenizer.json");
    write_corpus(txt, run.options.quick ? (1 << 20) : (4 << 20));
    const std::string text = read_text(txt);
    write_jsonl(text, jsonl);
    write_tokens(text, bin, tok);

    const std::vector<std::pair<std::string, Json>> configs = {
        {"text (char)", {{"type", "text"}, {"path", txt}, {"tokenizer", "char"}}},
        {"jsonl (char)", {{"type", "jsonl"}, {"path", jsonl}, {"tokenizer", "char"}}},
        {"bin (uint16)", {{"type", "bin"}, {"path", bin}, {"dtype", "uint16"}, {"tokenizer", tok}}},
    };
    std::vector<SourceRate> rates;
    std::shared_ptr<DataSource> text_source;
    for (const auto &[name, cfg] : configs) {
        auto source = run.registry.create_data_source(Config(cfg, "bench data", ""));
        rates.push_back({name, measure_data_throughput(*source, Split::Train, kBatch, kSeqLen, seconds).tokens_per_s});
        if (!text_source) text_source = source;
    }
    const auto [train_rate, train_label] = training_consumption(run, text_source);
    const auto slowest = std::min_element(rates.begin(), rates.end(), [](const auto &a, const auto &b) {
        return a.tokens_per_s < b.tokens_per_s;
    });
    const std::string shape = " B" + std::to_string(kBatch) + " T" + std::to_string(kSeqLen);
    const std::string baseline = format("training %.0f tok/s", train_rate);
    print_row("7 data pipeline, slowest: " + slowest->name + shape, format("%.0f tok/s", slowest->tokens_per_s),
              baseline, format("%.0fx (target >= 20x)", slowest->tokens_per_s / train_rate));
    for (const auto &r : rates)
        print_row("  data " + r.name + shape, format("%.0f tok/s", r.tokens_per_s), baseline,
                  format("%.0fx", r.tokens_per_s / train_rate));
    // The training rows' figure may be at another shape: the label names it.
    print_row("  training consumption", format("%.0f tok/s", train_rate), train_label, "-");
}

} // namespace cdrmix::bench
