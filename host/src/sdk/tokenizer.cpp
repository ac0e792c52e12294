#include "tokenizer_kinds.hpp"

#include <cdrmix/error.hpp>

#include <array>
#include <map>
#include <set>

namespace cdrmix {

namespace {

class ByteTokenizer final : public Tokenizer {
public:
    std::string kind() const override { return "byte"; }
    int64_t vocab_size() const override { return 256; }
    std::vector<int64_t> encode(const std::string &text) const override {
        std::vector<int64_t> ids(text.size());
        for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
        return ids;
    }
    std::string decode(const std::vector<int64_t> &ids) const override {
        std::string s;
        s.reserve(ids.size());
        for (int64_t id : ids) s.push_back(static_cast<char>(id & 0xff));
        return s;
    }
    Json to_json() const override { return {{"kind", "byte"}}; }
};

// Length of the UTF-8 sequence starting with byte c (1 for invalid lead bytes,
// so malformed input still tokenises byte by byte).
size_t utf8_length(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c >> 5) == 0x6) return 2;
    if ((c >> 4) == 0xe) return 3;
    if ((c >> 3) == 0x1e) return 4;
    return 1;
}

template <class F> void for_each_char(const std::string &text, F f) {
    for (size_t i = 0; i < text.size();) {
        size_t n = std::min(utf8_length(static_cast<unsigned char>(text[i])), text.size() - i);
        f(text.substr(i, n));
        i += n;
    }
}

class CharTokenizer final : public Tokenizer {
public:
    explicit CharTokenizer(std::vector<std::string> chars) : chars_(std::move(chars)) {
        ascii_.fill(-1);
        for (size_t i = 0; i < chars_.size(); ++i) {
            index_[chars_[i]] = static_cast<int64_t>(i);
            if (chars_[i].size() == 1 && static_cast<unsigned char>(chars_[i][0]) < 0x80)
                ascii_[static_cast<unsigned char>(chars_[i][0])] = static_cast<int64_t>(i);
        }
    }
    std::string kind() const override { return "char"; }
    int64_t vocab_size() const override { return static_cast<int64_t>(chars_.size()); }
    std::vector<int64_t> encode(const std::string &text) const override {
        std::vector<int64_t> ids;
        ids.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
            const auto lead = static_cast<unsigned char>(text[i]);
            // ASCII is most text: a table lookup instead of a map search per character.
            if (lead < 0x80 && ascii_[lead] >= 0) {
                ids.push_back(ascii_[lead]);
                ++i;
                continue;
            }
            const size_t n = std::min(utf8_length(lead), text.size() - i);
            auto it = index_.find(text.substr(i, n));
            if (it == index_.end())
                throw Error("char tokenizer: character '" + text.substr(i, n) + "' is not in the vocabulary");
            ids.push_back(it->second);
            i += n;
        }
        return ids;
    }
    std::string decode(const std::vector<int64_t> &ids) const override {
        std::string s;
        for (int64_t id : ids) {
            if (id < 0 || id >= vocab_size()) throw Error("char tokenizer: token id " + std::to_string(id) + " out of range");
            s += chars_[static_cast<size_t>(id)];
        }
        return s;
    }
    Json to_json() const override { return {{"kind", "char"}, {"chars", chars_}}; }

private:
    std::vector<std::string> chars_;
    std::map<std::string, int64_t> index_;
    std::array<int64_t, 128> ascii_;
};

class IdTokenizer final : public Tokenizer {
public:
    explicit IdTokenizer(int64_t vocab_size) : vocab_size_(vocab_size) {
        if (vocab_size < 1) throw Error("id tokenizer: vocab_size must be positive");
    }
    std::string kind() const override { return "ids"; }
    int64_t vocab_size() const override { return vocab_size_; }
    std::vector<int64_t> encode(const std::string &) const override {
        throw Error("this data has token ids but no text tokenizer; give the data source a 'tokenizer' to encode text");
    }
    std::string decode(const std::vector<int64_t> &ids) const override {
        std::string s;
        for (int64_t id : ids) s += std::to_string(id) + " ";
        return s;
    }
    Json to_json() const override { return {{"kind", "ids"}, {"vocab_size", vocab_size_}}; }

private:
    int64_t vocab_size_;
};

[[noreturn]] void malformed(const Json &j) {
    throw Error("tokenizer: unknown or malformed description: " + j.dump().substr(0, 80));
}

std::shared_ptr<Tokenizer> byte_from_json(const Json &) { return make_byte_tokenizer(); }

std::shared_ptr<Tokenizer> byte_from_spec(const CorpusVisitor &, const std::string &) { return make_byte_tokenizer(); }

std::shared_ptr<Tokenizer> char_from_json(const Json &j) {
    if (!j.contains("chars")) malformed(j);
    return std::make_shared<CharTokenizer>(j.at("chars").get<std::vector<std::string>>());
}

std::shared_ptr<Tokenizer> char_from_spec(const CorpusVisitor &corpus, const std::string &where) {
    std::set<std::string> seen;
    corpus([&](const std::string &text) { for_each_char(text, [&](const std::string &c) { seen.insert(c); }); });
    if (seen.empty()) throw Error(where + ": no text to build a char vocabulary from");
    return std::make_shared<CharTokenizer>(std::vector<std::string>(seen.begin(), seen.end()));
}

std::shared_ptr<Tokenizer> ids_from_json(const Json &j) {
    // An integer: a float's conversion to int64 is undefined beyond its range.
    if (!j.contains("vocab_size") || !j.at("vocab_size").is_number_integer()) malformed(j);
    return make_id_tokenizer(j.at("vocab_size").get<int64_t>());
}

const TokenizerKind kKinds[] = {
    {"byte", byte_from_json, byte_from_spec},
    {"char", char_from_json, char_from_spec},
    {"ids", ids_from_json, nullptr},
    {"sentencepiece", sentencepiece_from_json, nullptr},
    {"world", world_from_json, nullptr},
};

} // namespace

std::shared_ptr<Tokenizer> make_byte_tokenizer() { return std::make_shared<ByteTokenizer>(); }

std::shared_ptr<Tokenizer> make_char_tokenizer(const std::string &corpus) {
    std::set<std::string> seen;
    for_each_char(corpus, [&](const std::string &c) { seen.insert(c); });
    return std::make_shared<CharTokenizer>(std::vector<std::string>(seen.begin(), seen.end()));
}

std::shared_ptr<Tokenizer> make_id_tokenizer(int64_t vocab_size) { return std::make_shared<IdTokenizer>(vocab_size); }

const TokenizerKind *find_tokenizer_kind(const std::string &name) {
    for (const auto &kind : kKinds)
        if (name == kind.name) return &kind;
    return nullptr;
}

std::vector<std::string> spec_tokenizer_kinds() {
    std::vector<std::string> names;
    for (const auto &kind : kKinds)
        if (kind.from_spec) names.push_back(kind.name);
    return names;
}

std::shared_ptr<Tokenizer> tokenizer_from_json(const Json &j) {
    const TokenizerKind *kind = j.is_object() && j.value("kind", Json()).is_string()
                                    ? find_tokenizer_kind(j.at("kind").get<std::string>())
                                    : nullptr;
    if (!kind) malformed(j);
    try {
        return kind->from_json(j);
    } catch (const Json::exception &) { // a value of the wrong type, say "chars": 5
        malformed(j);
    }
}

} // namespace cdrmix
