// `cdrmix data stats`: files, records, tokens, record lengths and read speed of a corpus.
#include "cli/data/subcommands.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace cdrmix {

namespace {

struct Counts {
    int64_t files = 0, bytes = 0, records = 0, blank = 0, malformed = 0, tokens = 0;
    int64_t min_record = -1, max_record = 0;
    std::vector<bool> seen; // distinct token ids
    void add(const CorpusPiece &piece) {
        tokens += static_cast<int64_t>(piece.tokens.size());
        for (int64_t id : piece.tokens) {
            if (static_cast<size_t>(id) >= seen.size()) seen.resize(static_cast<size_t>(id) + 1, false);
            seen[static_cast<size_t>(id)] = true;
        }
        if (!piece.record) return;
        ++records;
        const auto n = static_cast<int64_t>(piece.tokens.size());
        min_record = min_record < 0 ? n : std::min(min_record, n);
        max_record = std::max(max_record, n);
    }
    int64_t distinct() const { return std::count(seen.begin(), seen.end(), true); }
};

void print_report(const Counts &c, const Tokenizer *tokenizer, double elapsed) {
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
}

Json report_json(const Counts &c, const Tokenizer *tokenizer, double elapsed) {
    return {{"files", c.files},
            {"bytes", c.bytes},
            {"records", c.records},
            {"blank_lines", c.blank},
            {"malformed_lines", c.malformed},
            {"tokens", c.tokens},
            {"distinct_tokens", c.distinct()},
            {"tokenizer", tokenizer ? tokenizer->kind() : "none"},
            {"vocab_size", tokenizer ? tokenizer->vocab_size() : 0},
            {"tokens_per_record",
             {{"min", std::max<int64_t>(0, c.min_record)},
              {"mean", c.records ? double(c.tokens) / double(c.records) : 0.0},
              {"max", c.max_record}}},
            {"seconds", elapsed},
            {"tokens_per_second", elapsed > 0 ? double(c.tokens) / elapsed : 0.0}};
}

class Stats final : public DataSubcommand {
public:
    explicit Stats(CLI::App &data)
        : DataSubcommand(data.add_subcommand("stats", "Corpus statistics: files, records, tokens, lengths, read speed")) {
        app().add_option("inputs", flags_.inputs, "Text, .jsonl or .bin files, folders or globs")->required();
        app().add_option("--dtype", dtype_, "Token type of .bin files: uint16 or uint32");
        app().add_flag("--json", json_, "Print the statistics as JSON");
        add_corpus_flags(app(), flags_, true);
    }

    int run() override {
        CorpusOptions options = corpus_options(flags_);
        const auto files = corpus_files(flags_.inputs);
        Counts c;
        std::vector<std::string> textual;
        for (const auto &f : files) {
            ++c.files;
            c.bytes += static_cast<int64_t>(std::filesystem::file_size(f));
            if (input_kind(f) != InputKind::Tokens) textual.push_back(f);
            else if (dtype_.empty()) throw Error(f + ": give --dtype uint16 or uint32 for token files");
        }
        const auto start = std::chrono::steady_clock::now();
        // Token files need no tokenizer; a corpus of them alone reports bare ids.
        std::shared_ptr<Tokenizer> tokenizer;
        if (!textual.empty()) tokenizer = corpus_tokenizer(flags_.tokenizer, textual, options);
        options.tokens = true;
        options.tokenizer = tokenizer.get();
        if (!dtype_.empty()) options.token_dtype = parse_token_dtype(dtype_, "--dtype");
        CorpusReader reader(files, options);
        for (CorpusPiece piece; reader.next(piece);) c.add(piece);
        c.blank = reader.blank();
        c.malformed = reader.malformed();
        const double elapsed = seconds_since(start);
        if (json_) std::printf("%s\n", report_json(c, tokenizer.get(), elapsed).dump(2).c_str());
        else print_report(c, tokenizer.get(), elapsed);
        return 0;
    }

private:
    CorpusFlags flags_;
    std::string dtype_;
    bool json_ = false;
};

} // namespace

std::unique_ptr<DataSubcommand> add_stats(CLI::App &data) { return std::make_unique<Stats>(data); }

} // namespace cdrmix
