// `cdrmix data filter`: drop documents by length, character statistics and perplexity.
#include "cli/data/corpus_tools.hpp"
#include "cli/data/perplexity.hpp"
#include "cli/data/subcommands.hpp"

#include "core/plugin_loader.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/registry.hpp>

#include <cmath>
#include <cstdio>

namespace cdrmix {

FilterCounts filter_corpus(const std::vector<std::string> &files, const CorpusOptions &options,
                           const FilterRules &rules, const PerplexityFn &perplexity, const std::string &output) {
    check_filter_rules(rules);
    if (rules.max_ppl > 0 && !perplexity) throw Error("--max-ppl needs --checkpoint: the model to score documents with");
    FilterCounts c;
    const PerplexityFn counted = [&](const std::string &text) {
        const double ppl = perplexity(text);
        if (std::isnan(ppl)) ++c.unscored;
        return ppl;
    };
    AtomicFileWriter out(output);
    CorpusReader reader(files, options);
    for (CorpusPiece doc; reader.next(doc);) {
        ++c.read;
        FilterReason reason;
        try {
            reason = filter_reason(doc.text, rules, counted);
        } catch (const Error &e) {
            throw Error(reader.file() + ": document " + std::to_string(c.read) + ": " + e.what());
        }
        if (reason == FilterReason::Kept) {
            ++c.kept;
            out.write(document_line(doc, reader.file()));
        } else {
            ++c.removed[static_cast<int>(reason)];
        }
    }
    out.commit();
    c.malformed = reader.malformed();
    return c;
}

namespace {

class Filter final : public DataSubcommand {
public:
    Filter(CLI::App &data, const std::vector<std::string> &plugin_paths)
        : DataSubcommand(data.add_subcommand("filter", "Drop documents by length, character statistics and perplexity")),
          plugin_paths_(plugin_paths) {
        app().add_option("inputs", flags_.inputs, "JSONL shards and text files (one document each), folders, globs")
            ->required();
        app().add_option("-o,--output", output_, "The .jsonl file of kept documents")->required();
        app().add_option("--min-chars", rules_.min_chars, "Fewest characters (code points) a document may have");
        app().add_option("--max-chars", rules_.max_chars, "Most characters (default: no limit)");
        app().add_option("--max-symbol-ratio", rules_.max_symbol_ratio,
                         "Largest share of characters that are neither letters, digits nor whitespace");
        app().add_option("--max-repeat-line-ratio", rules_.max_repeat_line_ratio,
                         "Largest share of non-blank lines that repeat an earlier line of the document");
        app().add_option("--max-char-run", rules_.max_char_run, "Longest run of one non-whitespace character");
        app().add_option("--checkpoint", checkpoint_, "Checkpoint whose model scores perplexity (with --max-ppl)");
        app().add_option("--max-ppl", rules_.max_ppl, "Highest perplexity a document may have under --checkpoint");
        app().add_option("--ppl-seq-len", ppl_seq_len_, "Tokens per scoring window (default: the run's seq_len)");
        add_corpus_flags(app(), flags_, false);
    }

    int run() override {
        check_filter_rules(rules_);
        if (!checkpoint_.empty() && rules_.max_ppl <= 0) throw Error("--checkpoint needs --max-ppl: the perplexity to keep");
        if (checkpoint_.empty() && rules_.max_ppl > 0) throw Error("--max-ppl needs --checkpoint: the model to score documents with");
        const CorpusOptions options = document_options(flags_);
        const auto files = corpus_files(flags_.inputs);
        std::unique_ptr<CheckpointPerplexity> scorer;
        PerplexityFn perplexity;
        if (!checkpoint_.empty()) {
            PluginLoader loader(Registry::global());
            loader.load_all(PluginLoader::search_path(plugin_paths_));
            for (const auto &p : loader.problems()) std::fprintf(stderr, "cdrmix: warning: %s\n", p.message.c_str());
            scorer = std::make_unique<CheckpointPerplexity>(checkpoint_, ppl_seq_len_);
            perplexity = [&](const std::string &text) { return (*scorer)(text); };
        }
        const auto start = std::chrono::steady_clock::now();
        const FilterCounts c = filter_corpus(files, options, rules_, perplexity, output_);
        print_report(c, seconds_since(start), scorer.get());
        return 0;
    }

private:
    void print_report(const FilterCounts &c, double elapsed, const CheckpointPerplexity *scorer) const {
        std::printf("read %lld documents, kept %lld, removed %lld -> %s (%.0f documents/s)\n",
                    static_cast<long long>(c.read), static_cast<long long>(c.kept),
                    static_cast<long long>(c.read - c.kept), output_.c_str(),
                    elapsed > 0 ? double(c.read) / elapsed : 0.0);
        if (c.malformed > 0) std::printf("skipped %lld malformed lines\n", static_cast<long long>(c.malformed));
        for (int r = 1; r < kFilterReasons; ++r)
            std::printf("  %-42s %lld\n", filter_reason_name(static_cast<FilterReason>(r)),
                        static_cast<long long>(c.removed[r]));
        if (scorer)
            std::printf("perplexity under %s (windows of %lld tokens); %lld documents too short to score were kept\n",
                        scorer->dir().c_str(), static_cast<long long>(scorer->seq_len()),
                        static_cast<long long>(c.unscored));
    }

    const std::vector<std::string> &plugin_paths_;
    CorpusFlags flags_;
    std::string output_, checkpoint_;
    FilterRules rules_;
    int64_t ppl_seq_len_ = 0;
};

} // namespace

std::unique_ptr<DataSubcommand> add_filter(CLI::App &data, const std::vector<std::string> &plugin_paths) {
    return std::make_unique<Filter>(data, plugin_paths);
}

} // namespace cdrmix
