// `cdrmix tokenizer train`: a sentencepiece BPE or unigram tokenizer from a corpus.
#include "cli/data/subcommands.hpp"

#include <cstdio>
#include <sstream>

namespace cdrmix {

namespace {

class TokenizerTrain final : public DataSubcommand {
public:
    explicit TokenizerTrain(CLI::App &tokenizer)
        : DataSubcommand(tokenizer.add_subcommand("train", "Train a sentencepiece BPE or unigram tokenizer on a corpus")) {
        spm_.seed = 42; // the data commands' seed, rather than sentencepiece's own default
        app().add_option("inputs", flags_.inputs, "Text / .jsonl files, folders or globs")->required();
        app().add_option("-o,--output", output_, "tokenizer.json (loads anywhere a tokenizer is named) or .model")
            ->required();
        app().add_option("--vocab-size", spm_.vocab_size, "Pieces in the vocabulary (default 8000)");
        app().add_option("--model-type", spm_.model_type, "bpe (default) or unigram");
        app().add_option("--character-coverage", spm_.character_coverage, "Share of characters covered (default 1.0)");
        app().add_option("--max-sentences", spm_.max_sentences, "Lines sampled for training (default 1000000)");
        app().add_option("--seed", spm_.seed, "Sampling seed (default 42)");
        add_corpus_flags(app(), flags_, false);
    }

    int run() override {
        CorpusOptions options = corpus_options(flags_);
        options.format.separator.clear(); // a record's own lines are its sentences
        const auto files = corpus_files(flags_.inputs);
        CorpusReader reader(files, options);
        // Sentences stream in without the corpus held twice: the non-empty
        // lines of one piece (a text line, a JSONL record) at a time, in order.
        std::vector<std::string> lines;
        size_t at = 0;
        auto next = [&](std::string &sentence) {
            for (CorpusPiece piece; at == lines.size();) {
                if (!reader.next(piece)) return false;
                lines.clear();
                at = 0;
                std::istringstream in(piece.text);
                for (std::string l; std::getline(in, l);)
                    if (!l.empty()) lines.push_back(std::move(l));
            }
            sentence = std::move(lines[at++]);
            return true;
        };
        const auto start = std::chrono::steady_clock::now();
        auto tokenizer = train_sentencepiece(next, spm_);
        const double elapsed = seconds_since(start);
        save_tokenizer_file(*tokenizer, output_);
        std::printf("trained a %s tokenizer of %lld pieces on %zu file(s) in %.1f s: %s\n", spm_.model_type.c_str(),
                    static_cast<long long>(tokenizer->vocab_size()), files.size(), elapsed, output_.c_str());
        return 0;
    }

private:
    CorpusFlags flags_;
    std::string output_;
    SentencepieceTraining spm_;
};

} // namespace

std::unique_ptr<DataSubcommand> add_tokenizer_train(CLI::App &tokenizer) {
    return std::make_unique<TokenizerTrain>(tokenizer);
}

} // namespace cdrmix
