// Text data source: raw text from files, folders (recursively) or globs,
// tokenised when the source is created (byte, char, or a tokenizer file) and
// packed into sequences. The last val_fraction of the token stream is the
// validation split. Order, sharding and position: cdrmix/window_source.hpp.
#include <cdrmix/data_paths.hpp>
#include <cdrmix/sdk.hpp>
#include <cdrmix/utf8.hpp>
#include <cdrmix/window_source.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace {

std::string read_all(const std::string &path, const std::string &where) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw cdrmix::Error(where + ": cannot read '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The char tokenizer's characters are UTF-8 sequences; another encoding would
// give it stray bytes for characters, without a word.
void require_utf8(const std::string &text, const std::string &path, const std::string &where) {
    const size_t at = cdrmix::first_invalid_utf8(text);
    if (at == std::string_view::npos) return;
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[at]));
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
    throw cdrmix::Error(where + ": '" + path + "' is not UTF-8 text: byte " + std::to_string(at) + " (line " +
                        std::to_string(line) + ") is " + byte +
                        "; the char tokenizer reads UTF-8 (convert the file, e.g. iconv -f latin1 -t utf-8, or use "
                        "tokenizer = \"byte\")");
}

std::shared_ptr<cdrmix::DataSource> make_text_source(const cdrmix::Config &cfg) {
    const std::vector<std::string> patterns = cdrmix::path_patterns(cfg, "path");
    const std::vector<std::string> files = cdrmix::expand_paths(patterns, "text", cfg.where());
    const bool chars = cfg.get_string("tokenizer") == "char";
    std::string corpus;
    for (const auto &f : files) {
        std::string text = read_all(f, cfg.where());
        if (chars) require_utf8(text, f, cfg.where());
        corpus += text;
    }
    if (corpus.empty()) throw cdrmix::Error(cfg.where() + ": the corpus at '" + patterns[0] + "' is empty");

    auto tokenizer = cdrmix::tokenizer_from_spec(
        cfg.get_string("tokenizer"), [&](const auto &visit) { visit(corpus); }, cfg.where());
    const double val_fraction = cdrmix::read_val_fraction(cfg);
    cdrmix::WindowSourceParts parts;
    parts.type = "text";
    parts.where = cfg.where();
    parts.split = cdrmix::read_split_options(cfg);
    const std::vector<int64_t> ids = tokenizer->encode(corpus);
    const auto n = static_cast<int64_t>(ids.size());
    const int64_t split_at = n - std::max<int64_t>(1, static_cast<int64_t>(double(n) * val_fraction));
    auto all = cdrmix::tokens_in_memory(std::vector<uint32_t>(ids.begin(), ids.end()));
    parts.train = cdrmix::slice_tokens(all, 0, split_at);
    parts.val = cdrmix::slice_tokens(all, split_at, n);
    parts.tokenizer = tokenizer;
    parts.description = "text: " + std::to_string(files.size()) + " file(s), " + std::to_string(n) + " " +
                        tokenizer->kind() + " tokens, vocabulary " + std::to_string(tokenizer->vocab_size());
    return cdrmix::make_window_source(std::move(parts));
}

cdrmix::Schema schema() {
    cdrmix::Schema s("Text files, folders or globs; byte, char or sentencepiece tokens");
    s.include(cdrmix::path_keys("text"));
    s.string("tokenizer", "char", "\"char\" (built from the corpus), \"byte\", or a tokenizer file");
    s.include(cdrmix::val_fraction_keys());
    s.include(cdrmix::split_keys());
    return s;
}

} // namespace

CDRMIX_PLUGIN("text", "1.1.0", "Raw text files tokenised at byte or char level, or with a tokenizer file") {
    const cdrmix::Schema s = schema();
    registry.add_data_source("text", s.doc(), s, make_text_source);
}
