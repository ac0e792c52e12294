#include "cli/data_commands.hpp"

#include "bench/data_throughput.hpp"
#include "core/plugin_loader.hpp"

#include <cdrmix/data_paths.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/jsonl.hpp>
#include <cdrmix/registry.hpp>
#include <cdrmix/token_sequence.hpp>
#include <cdrmix/tokenizer.hpp>
#include <cdrmix/window_source.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unordered_set>

namespace fs = std::filesystem;

namespace cdrmix {

struct DataCommands::Options {
    explicit Options(const std::vector<std::string> &paths) : plugin_paths(paths) {}
    const std::vector<std::string> &plugin_paths;
    CLI::App *to_jsonl = nullptr, *split = nullptr, *tokenize = nullptr, *stats = nullptr, *bench = nullptr,
             *train = nullptr;
    std::vector<std::string> inputs;
    std::string output, tokenizer = "byte", dtype, field, on_error = "fail";
    std::vector<std::string> extensions = {".txt", ".md", ".rst", ".json", ".jsonl"};
    int64_t max_files = 0, val_size = 0, eos_id = -1, batch_size = 16, seq_len = 256;
    double val_fraction = 0, seconds = 2;
    uint64_t seed = 42;
    bool json = false;
    SentencepieceTraining spm;
};

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

bool has_extension(const std::string &path, const std::string &ext) { return fs::path(path).extension() == ext; }

// Writes `body(out)` to path through a temporary file and a rename.
template <class F> void write_atomically(const std::string &path, F body) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error(tmp + ": cannot write");
        body(out);
        if (!out.flush()) throw Error(tmp + ": write failed");
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error(path + ": cannot rename " + tmp + " into place: " + ec.message());
}

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot read");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Calls f(line) for every line of a text file, newline included, without holding the file.
template <class F> void for_each_text_line(const std::string &path, F f) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot read");
    std::string line;
    while (std::getline(in, line)) {
        if (!in.eof()) line += '\n';
        f(line);
    }
}

RecordFormat record_format(const DataCommands::Options &o) {
    RecordFormat format;
    format.field = o.field;
    format.separator = "\n";
    format.eos_id = o.eos_id;
    return format;
}

// Every piece of text in the inputs: text files line by line, JSONL text fields.
// Malformed JSONL lines are fatal, or skipped with on_error = skip.
void visit_input_text(const std::vector<std::string> &files, const DataCommands::Options &o,
                      const std::function<void(const std::string &)> &sink) {
    const RecordFormat format = record_format(o);
    for (const auto &f : files) {
        if (has_extension(f, ".bin")) throw Error(f + ": a token file has no text; give text or JSONL files");
        if (!has_extension(f, ".jsonl")) {
            for_each_text_line(f, sink);
            continue;
        }
        JsonlLines lines(f);
        std::string line, text;
        while (lines.next(line)) {
            try {
                if (record_text(line, format, f, lines.line(), text)) sink(text);
            } catch (const Error &) {
                if (o.on_error != "skip") throw;
            }
        }
    }
}

std::shared_ptr<Tokenizer> input_tokenizer(const std::vector<std::string> &files, const DataCommands::Options &o) {
    return tokenizer_from_spec(
        o.tokenizer, [&](const auto &sink) { visit_input_text(files, o, sink); }, "--tokenizer");
}

std::vector<std::string> input_files(const DataCommands::Options &o) {
    return expand_paths(o.inputs, "input", "cdrmix data");
}

// ---- to-jsonl: one {"text": ...} record per file of a folder ----
int cmd_to_jsonl(const DataCommands::Options &o) {
    std::vector<std::string> files;
    for (const auto &f : input_files(o))
        if (std::find(o.extensions.begin(), o.extensions.end(), fs::path(f).extension().string()) != o.extensions.end())
            files.push_back(f);
    if (files.empty()) throw Error("cdrmix data to-jsonl: no files with the extensions given under the inputs");
    if (o.max_files > 0 && static_cast<int64_t>(files.size()) > o.max_files) files.resize(static_cast<size_t>(o.max_files));
    int64_t bytes = 0;
    write_atomically(o.output, [&](std::ofstream &out) {
        for (const auto &f : files) {
            const std::string text = read_file(f);
            bytes += static_cast<int64_t>(text.size());
            // Invalid UTF-8 becomes U+FFFD rather than failing the whole conversion.
            out << Json{{"text", text}, {"source", f}}.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
        }
    });
    std::printf("wrote %s: %zu records, %lld bytes of text\n", o.output.c_str(), files.size(), static_cast<long long>(bytes));
    return 0;
}

// ---- split: a seeded eval split of a JSONL file (train.jsonl + val.jsonl) ----
int cmd_split(const DataCommands::Options &o) {
    if (o.inputs.size() != 1 || !has_extension(o.inputs[0], ".jsonl"))
        throw Error("cdrmix data split: give exactly one .jsonl file");
    const std::string &input = o.inputs[0];
    int64_t total = 0;
    {
        JsonlLines lines(input);
        std::string line;
        while (lines.next(line))
            if (line.find_first_not_of(" \t\r") != std::string::npos) ++total;
    }
    int64_t want = o.val_size > 0 ? o.val_size : static_cast<int64_t>(std::llround(double(total) * o.val_fraction));
    if (o.val_size > 0 && o.val_fraction > 0) throw Error("cdrmix data split: give --val-size or --val-fraction, not both");
    if (want < 1 || want >= total)
        throw Error("cdrmix data split: " + input + " has " + std::to_string(total) +
                    " records; the val split must take at least 1 and leave at least 1");
    // Floyd's sampling: `want` distinct record indices in O(want) memory.
    std::mt19937_64 rng(o.seed);
    std::unordered_set<int64_t> chosen;
    for (int64_t j = total - want; j < total; ++j) {
        const int64_t t = std::uniform_int_distribution<int64_t>(0, j)(rng);
        if (!chosen.insert(t).second) chosen.insert(j);
    }
    fs::create_directories(o.output);
    const std::string train_path = (fs::path(o.output) / "train.jsonl").string();
    const std::string val_path = (fs::path(o.output) / "val.jsonl").string();
    write_atomically(train_path, [&](std::ofstream &train) {
        write_atomically(val_path, [&](std::ofstream &val) {
            JsonlLines lines(input);
            std::string line;
            int64_t index = 0;
            while (lines.next(line)) {
                if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                (chosen.count(index++) ? val : train) << line << '\n';
            }
        });
    });
    std::printf("wrote %s (%lld records) and %s (%lld records), seed %llu\n", train_path.c_str(),
                static_cast<long long>(total - want), val_path.c_str(), static_cast<long long>(want),
                static_cast<unsigned long long>(o.seed));
    return 0;
}

// ---- tokenize: text or JSONL to a token file ----
int cmd_tokenize(const DataCommands::Options &o) {
    const auto files = input_files(o);
    const auto start = Clock::now();
    auto tokenizer = input_tokenizer(files, o);
    const TokenDtype dtype = o.dtype.empty() ? (tokenizer->vocab_size() <= 65536 ? TokenDtype::U16 : TokenDtype::U32)
                                             : parse_token_dtype(o.dtype, "--dtype");
    TokenFileWriter writer(o.output, dtype);
    const RecordFormat format = record_format(o);
    int64_t skipped = 0;
    for (const auto &f : files) {
        if (has_extension(f, ".bin")) throw Error(f + ": already a token file");
        if (!has_extension(f, ".jsonl")) {
            // Lines batched into ~4 KiB pieces: flat memory, and sentencepiece's
            // encoder is several times slower on megabyte-long inputs.
            std::string piece;
            for_each_text_line(f, [&](const std::string &line) {
                piece += line;
                if (piece.size() < (1 << 12)) return;
                writer.write(tokenizer->encode(piece));
                piece.clear();
            });
            if (!piece.empty()) writer.write(tokenizer->encode(piece));
            continue;
        }
        JsonlLines lines(f);
        std::string line;
        std::vector<int64_t> ids;
        while (lines.next(line)) {
            ids.clear();
            try {
                if (!record_tokens(line, *tokenizer, format, f, lines.line(), ids)) continue;
            } catch (const Error &e) {
                if (o.on_error != "skip") throw;
                std::fprintf(stderr, "cdrmix: warning: %s; skipped\n", e.what());
                ++skipped;
                continue;
            }
            writer.write(ids);
        }
    }
    if (writer.count() == 0) throw Error("cdrmix data tokenize: the inputs hold no tokens");
    writer.commit();
    const std::string tokenizer_path = fs::path(o.output).replace_extension(".tokenizer.json").string();
    save_tokenizer_file(*tokenizer, tokenizer_path);
    std::printf("wrote %s: %lld %s tokens (%s, vocabulary %lld) in %.1f s; tokenizer in %s%s\n", o.output.c_str(),
                static_cast<long long>(writer.count()), token_dtype_name(dtype), tokenizer->kind().c_str(),
                static_cast<long long>(tokenizer->vocab_size()), seconds_since(start), tokenizer_path.c_str(),
                skipped ? (", " + std::to_string(skipped) + " malformed line(s) skipped").c_str() : "");
    return 0;
}

// ---- stats: corpus statistics ----
struct Counts {
    int64_t files = 0, bytes = 0, records = 0, blank = 0, malformed = 0, tokens = 0;
    int64_t min_record = -1, max_record = 0;
    std::vector<bool> seen; // distinct token ids
    void add_record(const std::vector<int64_t> &ids) {
        ++records;
        add_tokens(ids);
        const auto n = static_cast<int64_t>(ids.size());
        min_record = min_record < 0 ? n : std::min(min_record, n);
        max_record = std::max(max_record, n);
    }
    void add_tokens(const std::vector<int64_t> &ids) {
        tokens += static_cast<int64_t>(ids.size());
        for (int64_t id : ids) {
            if (static_cast<size_t>(id) >= seen.size()) seen.resize(static_cast<size_t>(id) + 1, false);
            seen[static_cast<size_t>(id)] = true;
        }
    }
    int64_t distinct() const { return std::count(seen.begin(), seen.end(), true); }
};

int cmd_stats(const DataCommands::Options &o) {
    const auto files = input_files(o);
    std::vector<std::string> textual;
    for (const auto &f : files)
        if (!has_extension(f, ".bin")) textual.push_back(f);
    const auto start = Clock::now();
    std::shared_ptr<Tokenizer> tokenizer;
    if (!textual.empty()) tokenizer = input_tokenizer(textual, o);
    const RecordFormat format = record_format(o);
    Counts c;
    for (const auto &f : files) {
        ++c.files;
        c.bytes += static_cast<int64_t>(fs::file_size(f));
        if (has_extension(f, ".bin")) {
            if (o.dtype.empty()) throw Error(f + ": give --dtype uint16 or uint32 for token files");
            auto tokens = map_token_file(f, parse_token_dtype(o.dtype, "--dtype"), int64_t(1) << 32);
            std::vector<int64_t> chunk;
            for (int64_t at = 0; at < tokens->size(); at += 1 << 20) {
                chunk.resize(static_cast<size_t>(std::min<int64_t>(1 << 20, tokens->size() - at)));
                tokens->read(at, static_cast<int64_t>(chunk.size()), chunk.data());
                c.add_tokens(chunk);
            }
        } else if (has_extension(f, ".jsonl")) {
            JsonlLines lines(f);
            std::string line;
            std::vector<int64_t> ids;
            while (lines.next(line)) {
                ids.clear();
                try {
                    if (record_tokens(line, *tokenizer, format, f, lines.line(), ids)) c.add_record(ids);
                    else ++c.blank;
                } catch (const Error &e) {
                    if (o.on_error != "skip") throw;
                    ++c.malformed;
                }
            }
        } else {
            for_each_text_line(f, [&](const std::string &line) { c.add_record(tokenizer->encode(line)); });
        }
    }
    const double elapsed = seconds_since(start);
    Json report = {{"files", c.files},       {"bytes", c.bytes},         {"records", c.records},
                   {"blank_lines", c.blank}, {"malformed_lines", c.malformed}, {"tokens", c.tokens},
                   {"distinct_tokens", c.distinct()},
                   {"tokenizer", tokenizer ? tokenizer->kind() : "none"},
                   {"vocab_size", tokenizer ? tokenizer->vocab_size() : 0},
                   {"tokens_per_record", {{"min", std::max<int64_t>(0, c.min_record)},
                                          {"mean", c.records ? double(c.tokens) / double(c.records) : 0.0},
                                          {"max", c.max_record}}},
                   {"seconds", elapsed},
                   {"tokens_per_second", elapsed > 0 ? double(c.tokens) / elapsed : 0.0}};
    if (o.json) {
        std::printf("%s\n", report.dump(2).c_str());
        return 0;
    }
    std::printf("files            %lld (%.2f MiB)\n", static_cast<long long>(c.files), double(c.bytes) / 1048576.0);
    std::printf("records          %lld (lines of text, JSONL records; %lld blank, %lld malformed skipped)\n",
                static_cast<long long>(c.records), static_cast<long long>(c.blank), static_cast<long long>(c.malformed));
    std::printf("tokens           %lld (%s), %lld distinct\n", static_cast<long long>(c.tokens),
                tokenizer ? (tokenizer->kind() + ", vocabulary " + std::to_string(tokenizer->vocab_size())).c_str()
                          : "token ids",
                static_cast<long long>(c.distinct()));
    if (c.records)
        std::printf("tokens/record    min %lld, mean %.1f, max %lld\n", static_cast<long long>(c.min_record),
                    double(c.tokens) / double(c.records), static_cast<long long>(c.max_record));
    std::printf("read + tokenised %.0f tokens/s (%.2f s)\n", elapsed > 0 ? double(c.tokens) / elapsed : 0.0, elapsed);
    return 0;
}

// ---- bench: tokens/s of a data source's batches alone ----
Json parse_setting_value(const std::string &value) {
    Json j = Json::parse(value, nullptr, false);
    return j.is_discarded() ? Json(value) : j;
}

int cmd_bench(const DataCommands::Options &o) {
    Json cfg = Json::object();
    for (const auto &kv : o.inputs) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) throw Error("cdrmix data bench: bad setting '" + kv + "': expected key=value");
        cfg[kv.substr(0, eq)] = parse_setting_value(kv.substr(eq + 1));
    }
    if (!cfg.contains("type")) throw Error("cdrmix data bench: give the source's type=..., e.g. type=jsonl path=data/*.jsonl");
    PluginLoader loader(Registry::global());
    loader.load_all(PluginLoader::search_path(o.plugin_paths));
    for (const auto &p : loader.problems()) std::fprintf(stderr, "cdrmix: warning: %s\n", p.message.c_str());
    const auto built = Clock::now();
    auto data = Registry::global().create_data_source(Config(cfg, "data", "command line"));
    std::printf("%s (ready in %.2f s)\n", data->describe().c_str(), seconds_since(built));
    for (Split split : {Split::Train, Split::Val}) {
        const DataThroughput r = measure_data_throughput(*data, split, o.batch_size, o.seq_len, o.seconds);
        std::printf("%-5s batch %lld x seq_len %lld: %lld batches in %.2f s, %.0f tokens/s\n",
                    split == Split::Train ? "train" : "val", static_cast<long long>(o.batch_size),
                    static_cast<long long>(o.seq_len), static_cast<long long>(r.batches), r.seconds, r.tokens_per_s);
    }
    return 0;
}

// ---- tokenizer train ----
int cmd_tokenizer_train(DataCommands::Options &o) {
    const auto files = input_files(o);
    // Lines are the sentences; a file's lines stream in without the corpus held twice.
    std::vector<std::string> pending;
    size_t file = 0;
    std::unique_ptr<std::ifstream> text;
    std::unique_ptr<JsonlLines> jsonl;
    const RecordFormat format = [&] {
        RecordFormat f = record_format(o);
        f.separator.clear();
        return f;
    }();
    auto next = [&](std::string &sentence) -> bool {
        for (;;) {
            if (!pending.empty()) {
                sentence = std::move(pending.back());
                pending.pop_back();
                return true;
            }
            if (!text && !jsonl) {
                if (file == files.size()) return false;
                const std::string &f = files[file++];
                if (has_extension(f, ".bin")) throw Error(f + ": a token file has no text");
                if (has_extension(f, ".jsonl")) jsonl = std::make_unique<JsonlLines>(f);
                else text = std::make_unique<std::ifstream>(f, std::ios::binary);
            }
            std::string line;
            if (text) {
                if (!std::getline(*text, line)) text.reset();
                else if (!line.empty()) pending.push_back(line);
                continue;
            }
            if (!jsonl->next(line)) {
                jsonl.reset();
                continue;
            }
            std::string record;
            try {
                if (!record_text(line, format, jsonl->path(), jsonl->line(), record)) continue;
            } catch (const Error &) {
                if (o.on_error != "skip") throw;
                continue;
            }
            // A record's lines are separate sentences, in order.
            std::vector<std::string> lines;
            std::istringstream in(record);
            for (std::string l; std::getline(in, l);)
                if (!l.empty()) lines.push_back(l);
            pending.assign(lines.rbegin(), lines.rend());
        }
    };
    o.spm.seed = o.seed;
    const auto start = Clock::now();
    auto tokenizer = train_sentencepiece(next, o.spm);
    const double elapsed = seconds_since(start);
    save_tokenizer_file(*tokenizer, o.output);
    std::printf("trained a %s tokenizer of %lld pieces on %zu file(s) in %.1f s: %s\n", o.spm.model_type.c_str(),
                static_cast<long long>(tokenizer->vocab_size()), files.size(), elapsed, o.output.c_str());
    return 0;
}

} // namespace

DataCommands::DataCommands(CLI::App &app, const std::vector<std::string> &plugin_paths)
    : o_(std::make_unique<Options>(plugin_paths)) {
    Options &o = *o_;
    auto *data = app.add_subcommand("data", "Corpus tools: to-jsonl, split, tokenize, stats, bench");
    data->require_subcommand(1);

    o.to_jsonl = data->add_subcommand("to-jsonl", "A folder of text files to JSONL, one {\"text\"} record per file");
    o.to_jsonl->add_option("inputs", o.inputs, "Folders, files or globs")->required();
    o.to_jsonl->add_option("-o,--output", o.output, "The .jsonl file to write")->required();
    o.to_jsonl->add_option("--ext", o.extensions, "File extensions to take (default .txt .md .rst .json .jsonl)");
    o.to_jsonl->add_option("--max-files", o.max_files, "Take at most this many files (sorted by path)");

    o.split = data->add_subcommand("split", "Split a JSONL file into train.jsonl and val.jsonl (seeded)");
    o.split->add_option("input", o.inputs, "The .jsonl file")->required();
    o.split->add_option("-o,--output", o.output, "Folder for train.jsonl and val.jsonl")->required();
    o.split->add_option("--val-size", o.val_size, "Records in the val split");
    o.split->add_option("--val-fraction", o.val_fraction, "Share of records in the val split");
    o.split->add_option("--seed", o.seed, "Sampling seed (default 42)");

    o.tokenize = data->add_subcommand("tokenize", "Text or JSONL to a token file (.bin) plus its tokenizer JSON");
    o.tokenize->add_option("inputs", o.inputs, "Text / .jsonl files, folders or globs")->required();
    o.tokenize->add_option("-o,--output", o.output, "The .bin file to write")->required();
    o.tokenize->add_option("--dtype", o.dtype, "uint16 or uint32 (default: uint16 when the vocabulary fits)");

    o.stats = data->add_subcommand("stats", "Corpus statistics: files, records, tokens, lengths, read speed");
    o.stats->add_option("inputs", o.inputs, "Text, .jsonl or .bin files, folders or globs")->required();
    o.stats->add_option("--dtype", o.dtype, "Token type of .bin files: uint16 or uint32");
    o.stats->add_flag("--json", o.json, "Print the statistics as JSON");

    for (CLI::App *cmd : {o.tokenize, o.stats}) {
        cmd->add_option("--tokenizer", o.tokenizer, "byte, char or a tokenizer file (.json, .model); default byte");
        cmd->add_option("--field", o.field, "JSONL field to read (default: text, tokens or input_ids)");
        cmd->add_option("--eos-id", o.eos_id, "Token appended after every JSONL record");
        cmd->add_option("--on-error", o.on_error, "Malformed JSONL lines: fail (default) or skip");
    }

    o.bench = data->add_subcommand("bench", "Tokens/s of a data source's batches alone (no model)");
    o.bench->add_option("settings", o.inputs, "The data config as key=value (type=jsonl path=...)")->required();
    o.bench->add_option("--batch-size", o.batch_size, "Batch size (default 16)");
    o.bench->add_option("--seq-len", o.seq_len, "Sequence length (default 256)");
    o.bench->add_option("--seconds", o.seconds, "Time per split (default 2)");

    auto *tokenizer = app.add_subcommand("tokenizer", "Tokenizer tools");
    tokenizer->require_subcommand(1);
    o.train = tokenizer->add_subcommand("train", "Train a sentencepiece BPE or unigram tokenizer on a corpus");
    o.train->add_option("inputs", o.inputs, "Text / .jsonl files, folders or globs")->required();
    o.train->add_option("-o,--output", o.output, "tokenizer.json (loads anywhere a tokenizer is named) or .model")->required();
    o.train->add_option("--vocab-size", o.spm.vocab_size, "Pieces in the vocabulary (default 8000)");
    o.train->add_option("--model-type", o.spm.model_type, "bpe (default) or unigram");
    o.train->add_option("--character-coverage", o.spm.character_coverage, "Share of characters covered (default 1.0)");
    o.train->add_option("--max-sentences", o.spm.max_sentences, "Lines sampled for training (default 1000000)");
    o.train->add_option("--field", o.field, "JSONL field holding the text (default text)");
    o.train->add_option("--on-error", o.on_error, "Malformed JSONL lines: fail (default) or skip");
    o.train->add_option("--seed", o.seed, "Sampling seed (default 42)");
}

DataCommands::~DataCommands() = default;

bool DataCommands::selected() const {
    for (CLI::App *cmd : {o_->to_jsonl, o_->split, o_->tokenize, o_->stats, o_->bench, o_->train})
        if (cmd->parsed()) return true;
    return false;
}

int DataCommands::run() {
    Options &o = *o_;
    if (o.on_error != "fail" && o.on_error != "skip")
        throw Error("--on-error must be fail or skip, got '" + o.on_error + "'");
    if (o.to_jsonl->parsed()) return cmd_to_jsonl(o);
    if (o.split->parsed()) return cmd_split(o);
    if (o.tokenize->parsed()) return cmd_tokenize(o);
    if (o.stats->parsed()) return cmd_stats(o);
    if (o.bench->parsed()) return cmd_bench(o);
    return cmd_tokenizer_train(o);
}

} // namespace cdrmix
