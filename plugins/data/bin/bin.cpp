// Token-array data source: memory-mapped files of raw uint16 ids (nanoGPT's
// train.bin / val.bin) or uint32 ids (Oxidizr's .bin), read in place without
// conversion. Several files are read as one stream in sorted order. Order,
// sharding and position: cdrmix/window_source.hpp. The vocabulary comes from a
// tokenizer (file or "byte") or, for bare ids, from vocab_size: exactly one of
// the two. The val split is val_path's files, or else the last val_fraction of
// the stream.
#include <cdrmix/data_paths.hpp>
#include <cdrmix/sdk.hpp>
#include <cdrmix/window_source.hpp>

namespace {

std::shared_ptr<cdrmix::TokenSequence> map_all(const std::vector<std::string> &files, cdrmix::TokenDtype dtype,
                                               int64_t vocab) {
    std::vector<std::shared_ptr<cdrmix::TokenSequence>> parts;
    for (const auto &f : files) parts.push_back(cdrmix::map_token_file(f, dtype, vocab));
    return cdrmix::concat_tokens(std::move(parts));
}

std::shared_ptr<cdrmix::Tokenizer> bin_tokenizer(const cdrmix::Config &cfg) {
    const bool has_tokenizer = cfg.has("tokenizer"), has_vocab = cfg.has("vocab_size");
    if (has_tokenizer == has_vocab)
        throw cdrmix::Error(cfg.where() + ": give either 'tokenizer' (a tokenizer file or \"byte\") or 'vocab_size'");
    if (has_vocab) return cdrmix::make_id_tokenizer(cfg.get_int("vocab_size"));
    const std::string spec = cfg.get_string("tokenizer");
    if (spec == "char") throw cdrmix::Error(cfg.where() + ": a char vocabulary cannot be rebuilt from token ids; give the tokenizer file");
    return cdrmix::tokenizer_from_spec(spec, {}, cfg.where());
}

std::shared_ptr<cdrmix::DataSource> make_bin_source(const cdrmix::Config &cfg) {
    const std::vector<std::string> patterns = cdrmix::path_patterns(cfg, "path");
    const cdrmix::TokenDtype dtype = cdrmix::parse_token_dtype(cfg.get_string("dtype"), cfg.where());
    auto tokenizer = bin_tokenizer(cfg);
    const int64_t vocab = tokenizer->vocab_size();
    if (dtype == cdrmix::TokenDtype::U16 && vocab > 65536)
        throw cdrmix::Error(cfg.where() + ": a vocabulary of " + std::to_string(vocab) + " does not fit uint16 tokens");

    const std::vector<std::string> files = cdrmix::expand_paths(patterns, "token", cfg.where());
    cdrmix::WindowSourceParts parts;
    parts.type = "bin";
    parts.where = cfg.where();
    parts.tokenizer = tokenizer;
    auto train = map_all(files, dtype, vocab);
    const std::vector<std::string> val_patterns = cdrmix::path_patterns(cfg, "val_path");
    if (!val_patterns.empty()) {
        if (cfg.has("val_fraction")) throw cdrmix::Error(cfg.where() + ": give 'val_path' or 'val_fraction', not both");
        parts.train = train;
        parts.val = map_all(cdrmix::expand_paths(val_patterns, "token", cfg.where()), dtype, vocab);
    } else {
        const double val_fraction = cdrmix::read_val_fraction(cfg);
        const int64_t n = train->size();
        const int64_t split_at = n - std::max<int64_t>(1, static_cast<int64_t>(double(n) * val_fraction));
        parts.train = cdrmix::slice_tokens(train, 0, split_at);
        parts.val = cdrmix::slice_tokens(train, split_at, n);
    }
    parts.split = cdrmix::read_split_options(cfg);
    parts.description = "bin: " + std::to_string(files.size()) + " " + cdrmix::token_dtype_name(dtype) +
                        " file(s), " + std::to_string(parts.train->size()) + " train + " +
                        std::to_string(parts.val->size()) + " val tokens, vocabulary " + std::to_string(vocab);
    return cdrmix::make_window_source(std::move(parts));
}

cdrmix::Schema schema() {
    cdrmix::Schema s("Memory-mapped uint16 / uint32 token files");
    s.include(cdrmix::path_keys("token"));
    s.string("dtype", nullptr, "how ids are stored: uint16 (nanoGPT) or uint32 (Oxidizr)")
        .one_of({"uint16", "uint32"})
        .required();
    s.string("tokenizer", nullptr, "a tokenizer file or \"byte\" (or give vocab_size instead)");
    s.integer("vocab_size", nullptr, "vocabulary size of bare token ids (or give tokenizer instead)").min(1);
    s.include(cdrmix::val_path_keys("token"));
    s.include(cdrmix::val_fraction_keys());
    s.include(cdrmix::split_keys());
    return s;
}

} // namespace

CDRMIX_PLUGIN("bin", "1.0.0", "Memory-mapped uint16 / uint32 token arrays (nanoGPT, Oxidizr)") {
    const cdrmix::Schema s = schema();
    registry.add_data_source("bin", s.doc(), s, make_bin_source);
}
