// `cdrmix data tokenize`: text or JSONL to a token file (.bin) plus its tokenizer JSON.
#include "cli/data/subcommands.hpp"

#include <cstdio>
#include <filesystem>

namespace cdrmix {

namespace {

class Tokenize final : public DataSubcommand {
public:
    explicit Tokenize(CLI::App &data)
        : DataSubcommand(data.add_subcommand("tokenize", "Text or JSONL to a token file (.bin) plus its tokenizer JSON")) {
        app().add_option("inputs", flags_.inputs, "Text / .jsonl files, folders or globs")->required();
        app().add_option("-o,--output", output_, "The .bin file to write")->required();
        app().add_option("--dtype", dtype_, "uint16 or uint32 (default: uint16 when the vocabulary fits)");
        add_corpus_flags(app(), flags_, true);
    }

    int run() override {
        CorpusOptions options = corpus_options(flags_);
        const auto files = corpus_files(flags_.inputs);
        const auto start = std::chrono::steady_clock::now();
        const auto tokenizer = corpus_tokenizer(flags_.tokenizer, files, options);
        const TokenDtype dtype = dtype_.empty() ? (tokenizer->vocab_size() <= 65536 ? TokenDtype::U16 : TokenDtype::U32)
                                                : parse_token_dtype(dtype_, "--dtype");
        options.tokens = true;
        options.tokenizer = tokenizer.get();
        options.text_piece_bytes = 1 << 12;
        options.on_skipped = [](const Error &e) { std::fprintf(stderr, "cdrmix: warning: %s; skipped\n", e.what()); };
        TokenFileWriter writer(output_, dtype);
        CorpusReader reader(files, options);
        for (CorpusPiece piece; reader.next(piece);) writer.write(piece.tokens);
        if (writer.count() == 0) throw Error("cdrmix data tokenize: the inputs hold no tokens");
        writer.commit();
        const std::string tokenizer_path = std::filesystem::path(output_).replace_extension(".tokenizer.json").string();
        save_tokenizer_file(*tokenizer, tokenizer_path);
        const std::string skipped =
            reader.malformed() ? ", " + std::to_string(reader.malformed()) + " malformed line(s) skipped" : "";
        std::printf("wrote %s: %lld %s tokens (%s, vocabulary %lld) in %.1f s; tokenizer in %s%s\n", output_.c_str(),
                    static_cast<long long>(writer.count()), token_dtype_name(dtype), tokenizer->kind().c_str(),
                    static_cast<long long>(tokenizer->vocab_size()), seconds_since(start), tokenizer_path.c_str(),
                    skipped.c_str());
        return 0;
    }

private:
    CorpusFlags flags_;
    std::string output_, dtype_;
};

} // namespace

std::unique_ptr<DataSubcommand> add_tokenize(CLI::App &data) { return std::make_unique<Tokenize>(data); }

} // namespace cdrmix
