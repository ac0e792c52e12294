#include "cli/data/subcommands.hpp"

#include <limits>

namespace cdrmix {

void add_corpus_flags(CLI::App &cmd, CorpusFlags &flags, bool with_tokenizer) {
    if (with_tokenizer) {
        cmd.add_option("--tokenizer", flags.tokenizer, "byte, char or a tokenizer file (.json, .model); default byte");
        cmd.add_option("--eos-id", flags.eos_id, "Token appended after every JSONL record");
    }
    cmd.add_option("--field", flags.field, "JSONL field to read (default: text, tokens or input_ids)");
    cmd.add_option("--on-error", flags.on_error, "Malformed JSONL lines: fail (default) or skip");
}

CorpusOptions corpus_options(const CorpusFlags &flags) {
    if (flags.on_error != "fail" && flags.on_error != "skip")
        throw Error("--on-error must be fail or skip, got '" + flags.on_error + "'");
    CorpusOptions options;
    options.format.field = flags.field;
    options.format.separator = "\n";
    options.format.eos_id = flags.eos_id;
    options.skip_malformed = flags.on_error == "skip";
    return options;
}

CorpusOptions document_options(const CorpusFlags &flags) {
    CorpusOptions options = corpus_options(flags);
    options.format.separator.clear();
    options.text_piece_bytes = std::numeric_limits<size_t>::max(); // a text file is one document
    return options;
}

std::string document_line(const CorpusPiece &piece, const std::string &file) {
    if (!piece.line.empty()) return piece.line + "\n";
    // Invalid UTF-8 becomes U+FFFD rather than failing the whole command.
    return Json{{"text", piece.text}, {"source", file}}.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace cdrmix
