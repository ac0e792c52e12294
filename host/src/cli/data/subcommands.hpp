// The subcommands of `cdrmix data` and `cdrmix tokenizer`, one file each:
// every add_* adds its options to the parent command and returns the object
// that runs it once parsing has filled them.
#pragma once

#include "cli/data/corpus_reader.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

class DataSubcommand {
public:
    explicit DataSubcommand(CLI::App *app) : app_(app) {}
    virtual ~DataSubcommand() = default;
    bool parsed() const { return app_->parsed(); }
    // Returns the exit code; errors a user can cause throw cdrmix::Error.
    virtual int run() = 0;

protected:
    CLI::App &app() const { return *app_; }

private:
    CLI::App *app_;
};

std::unique_ptr<DataSubcommand> add_to_jsonl(CLI::App &data);
std::unique_ptr<DataSubcommand> add_split(CLI::App &data);
std::unique_ptr<DataSubcommand> add_tokenize(CLI::App &data);
std::unique_ptr<DataSubcommand> add_stats(CLI::App &data);
// plugin_paths is read when the command runs, after parsing has filled it.
std::unique_ptr<DataSubcommand> add_bench(CLI::App &data, const std::vector<std::string> &plugin_paths);
std::unique_ptr<DataSubcommand> add_dedup(CLI::App &data);
// plugin_paths: the blocks a --checkpoint's model needs are plugins.
std::unique_ptr<DataSubcommand> add_filter(CLI::App &data, const std::vector<std::string> &plugin_paths);
std::unique_ptr<DataSubcommand> add_synth_chat(CLI::App &data);
std::unique_ptr<DataSubcommand> add_tokenizer_train(CLI::App &tokenizer);

// How tokenize, stats and tokenizer train read their inputs, as the command line gives it.
struct CorpusFlags {
    std::vector<std::string> inputs;
    std::string tokenizer = "byte", field, on_error = "fail";
    int64_t eos_id = -1;
};
// --field and --on-error; with_tokenizer adds --tokenizer and --eos-id.
void add_corpus_flags(CLI::App &cmd, CorpusFlags &flags, bool with_tokenizer);
// The reader's options: JSONL records separated by "\n"; throws for a bad --on-error.
CorpusOptions corpus_options(const CorpusFlags &flags);

// dedup and filter read documents: a JSONL record's text (nothing appended),
// or a whole text file; JSONL records of token ids are passed over.
CorpusOptions document_options(const CorpusFlags &flags);
// A kept document as an output line: a JSONL record's line as it was read, a
// text file as {"text": ..., "source": file} (as `to-jsonl` writes it).
std::string document_line(const CorpusPiece &piece, const std::string &file);

// Seconds since a steady-clock time point, for the commands' timing lines.
double seconds_since(std::chrono::steady_clock::time_point start);

} // namespace cdrmix
