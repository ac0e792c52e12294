#include <cdrmix/error.hpp>
#include <cdrmix/tokenizer.hpp>

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
        for (size_t i = 0; i < chars_.size(); ++i) index_[chars_[i]] = static_cast<int64_t>(i);
    }
    std::string kind() const override { return "char"; }
    int64_t vocab_size() const override { return static_cast<int64_t>(chars_.size()); }
    std::vector<int64_t> encode(const std::string &text) const override {
        std::vector<int64_t> ids;
        ids.reserve(text.size());
        for_each_char(text, [&](const std::string &c) {
            auto it = index_.find(c);
            if (it == index_.end())
                throw Error("char tokenizer: character '" + c + "' is not in the vocabulary");
            ids.push_back(it->second);
        });
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
};

} // namespace

std::shared_ptr<Tokenizer> make_byte_tokenizer() { return std::make_shared<ByteTokenizer>(); }

std::shared_ptr<Tokenizer> make_char_tokenizer(const std::string &corpus) {
    std::set<std::string> seen;
    for_each_char(corpus, [&](const std::string &c) { seen.insert(c); });
    return std::make_shared<CharTokenizer>(std::vector<std::string>(seen.begin(), seen.end()));
}

std::shared_ptr<Tokenizer> tokenizer_from_json(const Json &j) {
    const std::string kind = j.value("kind", "");
    if (kind == "byte") return make_byte_tokenizer();
    if (kind == "char" && j.contains("chars")) return std::make_shared<CharTokenizer>(j.at("chars").get<std::vector<std::string>>());
    throw Error("tokenizer: unknown or malformed description: " + j.dump().substr(0, 80));
}

} // namespace cdrmix
