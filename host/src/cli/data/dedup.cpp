// `cdrmix data dedup`: MinHash + LSH near-duplicate removal over JSONL records and text files.
#include "cli/data/corpus_tools.hpp"
#include "cli/data/subcommands.hpp"

#include <cdrmix/atomic_file.hpp>

#include <cstdio>

namespace cdrmix {

DedupCounts dedup_corpus(const std::vector<std::string> &files, const CorpusOptions &options,
                         const DedupOptions &dedup, const std::string &output) {
    check_minhash_options(dedup.minhash);
    const int64_t bands = dedup.bands > 0 ? dedup.bands : choose_bands(dedup.threshold, dedup.minhash.num_perm);
    NearDuplicateIndex index(dedup.minhash.num_perm, bands, dedup.threshold);
    DedupCounts c;
    c.bands = bands;
    c.rows = index.rows();
    AtomicFileWriter out(output);
    CorpusReader reader(files, options);
    for (CorpusPiece doc; reader.next(doc);) {
        ++c.read;
        if (index.is_duplicate_else_add(minhash_signature(doc.text, dedup.minhash))) ++c.removed;
        else out.write(document_line(doc, reader.file()));
    }
    out.commit();
    c.kept = c.read - c.removed;
    c.malformed = reader.malformed();
    return c;
}

namespace {

class Dedup final : public DataSubcommand {
public:
    explicit Dedup(CLI::App &data)
        : DataSubcommand(data.add_subcommand("dedup", "Remove near-duplicate documents (MinHash + LSH), keeping the first")) {
        app().add_option("inputs", flags_.inputs, "JSONL shards and text files (one document each), folders, globs")
            ->required();
        app().add_option("-o,--output", output_, "The .jsonl file of kept documents")->required();
        app().add_option("--threshold", options_.threshold, "Estimated Jaccard similarity that counts as a duplicate (default 0.8)");
        app().add_option("--shingle", options_.minhash.shingle, "Words per shingle (default 5)");
        app().add_option("--num-perm", options_.minhash.num_perm, "MinHash functions per signature (default 128)");
        app().add_option("--bands", options_.bands, "LSH bands (default: chosen for the threshold)");
        app().add_option("--seed", options_.minhash.seed, "Seed of the hash functions (default 1)");
        add_corpus_flags(app(), flags_, false);
    }

    int run() override {
        const CorpusOptions options = document_options(flags_);
        const auto files = corpus_files(flags_.inputs);
        const auto start = std::chrono::steady_clock::now();
        const DedupCounts c = dedup_corpus(files, options, options_, output_);
        const double elapsed = seconds_since(start);
        std::printf("read %lld documents, removed %lld near-duplicates, kept %lld -> %s\n",
                    static_cast<long long>(c.read), static_cast<long long>(c.removed), static_cast<long long>(c.kept),
                    output_.c_str());
        if (c.malformed > 0) std::printf("skipped %lld malformed lines\n", static_cast<long long>(c.malformed));
        std::printf("threshold %.3f (estimated Jaccard), %lld-word shingles, %lld permutations in %lld bands of %lld "
                    "rows; %.0f documents/s (%.2f s)\n",
                    options_.threshold, static_cast<long long>(options_.minhash.shingle),
                    static_cast<long long>(options_.minhash.num_perm), static_cast<long long>(c.bands),
                    static_cast<long long>(c.rows), elapsed > 0 ? double(c.read) / elapsed : 0.0, elapsed);
        return 0;
    }

private:
    CorpusFlags flags_;
    std::string output_;
    DedupOptions options_;
};

} // namespace

std::unique_ptr<DataSubcommand> add_dedup(CLI::App &data) { return std::make_unique<Dedup>(data); }

} // namespace cdrmix
