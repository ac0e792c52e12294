// Tokenizer files and the data config's `tokenizer` spec: the one place
// tokenizers meet the file system.
#include "tokenizer_kinds.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace cdrmix {

namespace {

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("tokenizer: cannot read '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool ends_with(const std::string &s, const std::string &suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "\"byte\", \"char\""
std::string quoted_spec_kinds() {
    std::string out;
    for (const auto &name : spec_tokenizer_kinds()) out += (out.empty() ? "\"" : ", \"") + name + "\"";
    return out;
}

} // namespace

std::shared_ptr<Tokenizer> tokenizer_from_spec(const std::string &spec, const CorpusVisitor &corpus,
                                               const std::string &where) {
    const TokenizerKind *kind = find_tokenizer_kind(spec);
    if (kind && kind->from_spec) return kind->from_spec(corpus, where);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(spec, ec))
        throw Error(where + ": key 'tokenizer' must be " + quoted_spec_kinds() + " or a tokenizer file, got \"" + spec +
                    "\"");
    return load_tokenizer_file(spec);
}

std::shared_ptr<Tokenizer> load_tokenizer_file(const std::string &path) {
    const std::string bytes = read_file(path);
    if (ends_with(path, ".json")) {
        Json j = Json::parse(bytes, nullptr, false);
        if (j.is_discarded()) throw Error("tokenizer: '" + path + "' is not valid JSON");
        try {
            return tokenizer_from_json(j);
        } catch (const Error &e) {
            throw Error(path + ": " + e.what());
        }
    }
    if (ends_with(path, ".txt")) return make_world_tokenizer(bytes, path);
    try {
        return make_sentencepiece_tokenizer(bytes);
    } catch (const Error &e) {
        throw Error(path + ": not a sentencepiece model or tokenizer JSON (" + e.what() + ")");
    }
}

void save_tokenizer_file(const Tokenizer &tokenizer, const std::string &path) {
    if (!ends_with(path, ".model")) {
        write_file_atomic(path, tokenizer.to_json().dump() + "\n");
        return;
    }
    const std::string *proto = sentencepiece_proto(tokenizer);
    if (!proto) throw Error("tokenizer: only a sentencepiece tokenizer can be written as '" + path + "'; use .json");
    write_file_atomic(path, *proto);
}

} // namespace cdrmix
