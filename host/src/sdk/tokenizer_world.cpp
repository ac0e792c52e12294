// The RWKV World tokenizer: RWKV-LM's rwkv_vocab_v20230424.txt format, one
// token per line as `ID LITERAL BYTE_LENGTH`, the literal a Python str (its
// UTF-8 encoding) or bytes literal; text is encoded by greedy longest match over
// bytes, as RWKV-LM's TRIE_TOKENIZER does. The vocabulary file is untrusted
// input: every line is checked (literal syntax, escapes, the byte length it
// states, duplicate ids and tokens) and errors name the line.
#include "tokenizer_kinds.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/utf8.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <unordered_map>

namespace cdrmix {

namespace {

// Highest id a vocabulary line may give: the model schema's vocab_size bound.
constexpr int64_t kMaxWorldId = (int64_t(1) << 24) - 1;

void append_utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
        out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The value of `digits` hex digits at s[i]; throws (prefixed with where) when they are not all there.
uint32_t hex_escape(const std::string &s, size_t i, size_t digits, const std::string &where) {
    uint32_t v = 0;
    for (size_t k = 0; k < digits; ++k) {
        const int h = i + k < s.size() ? hex_value(s[i + k]) : -1;
        if (h < 0) throw Error(where + ": a \\" + s[i - 1] + " escape needs " + std::to_string(digits) + " hex digits");
        v = v * 16 + uint32_t(h);
    }
    return v;
}

// The bytes of a Python str literal (encoded as UTF-8) or bytes literal (b'...'),
// with Python's escapes: \\ \' \" \a \b \f \n \r \t \v, octal \ooo, \xhh, and in
// str literals \uXXXX and \UXXXXXXXX. An unrecognised escape keeps its
// backslash, as in Python. Throws (prefixed with where) for anything else.
std::string parse_python_literal(const std::string &lit, const std::string &where) {
    size_t i = 0;
    const bool bytes = i < lit.size() && (lit[i] == 'b' || lit[i] == 'B');
    if (bytes) ++i;
    if (i >= lit.size() || (lit[i] != '\'' && lit[i] != '"'))
        throw Error(where + ": expected a Python str or bytes literal, got " + lit.substr(0, 40));
    const char quote = lit[i++];
    std::string out;
    auto code_point = [&](uint32_t cp) {
        if (bytes) out.push_back(static_cast<char>(cp));
        else append_utf8(out, cp);
    };
    for (;;) {
        if (i >= lit.size()) throw Error(where + ": the literal has no closing quote");
        const char c = lit[i];
        if (c == quote) break;
        if (c != '\\') {
            if (bytes && static_cast<unsigned char>(c) >= 0x80)
                throw Error(where + ": a bytes literal holds a non-ASCII character");
            out.push_back(c);
            ++i;
            continue;
        }
        if (i + 1 >= lit.size()) throw Error(where + ": the literal has no closing quote");
        const char e = lit[i + 1];
        i += 2;
        switch (e) {
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x':
            code_point(hex_escape(lit, i, 2, where));
            i += 2;
            break;
        case 'u':
        case 'U': {
            if (bytes) { // not an escape in bytes: the backslash stays
                out += '\\';
                out += e;
                break;
            }
            const size_t digits = e == 'u' ? 4 : 8;
            const uint32_t cp = hex_escape(lit, i, digits, where);
            // Python accepts lone surrogates in str but cannot encode them as UTF-8.
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                throw Error(where + ": \\" + e + " escape of a code point UTF-8 cannot encode");
            code_point(cp);
            i += digits;
            break;
        }
        case 'N':
            if (!bytes) throw Error(where + ": \\N{...} named escapes are not supported");
            out += "\\N";
            break;
        default:
            if (e >= '0' && e <= '7') {
                uint32_t v = uint32_t(e - '0');
                for (int k = 0; k < 2 && i < lit.size() && lit[i] >= '0' && lit[i] <= '7'; ++k) v = v * 8 + uint32_t(lit[i++] - '0');
                if (bytes && v > 0xff) throw Error(where + ": octal escape above \\377 in a bytes literal");
                code_point(v);
            } else {
                out += '\\';
                out += e;
            }
        }
    }
    if (i + 1 != lit.size()) throw Error(where + ": text after the closing quote of the literal");
    return out;
}

// A decimal number of at most 9 digits (nothing else), or -1.
int64_t parse_count(const std::string &s) {
    if (s.empty() || s.size() > 9) return -1;
    int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

class WorldTokenizer final : public Tokenizer {
public:
    WorldTokenizer(std::string vocab_text, const std::string &where, int64_t vocab_size)
        : text_(std::move(vocab_text)) {
        nodes_.push_back(-1);
        int64_t max_id = -1;
        size_t line_no = 0;
        for (size_t start = 0; start < text_.size();) {
            size_t end = text_.find('\n', start);
            if (end == std::string::npos) end = text_.size();
            std::string line = text_.substr(start, end - start);
            start = end + 1;
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            const std::string at = where + ":" + std::to_string(line_no);
            const auto [id, bytes] = parse_line(line, at);
            if (!tokens_.emplace(id, bytes).second) throw Error(at + ": id " + std::to_string(id) + " appears twice");
            add(bytes, id, at);
            max_id = std::max(max_id, id);
        }
        if (tokens_.empty()) throw Error(where + ": no tokens (expected lines of `ID LITERAL BYTE_LENGTH`)");
        if (vocab_size < 0 || (vocab_size != 0 && vocab_size <= max_id))
            throw Error(where + ": token id " + std::to_string(max_id) + " does not fit a vocabulary of " +
                        std::to_string(vocab_size));
        vocab_size_ = vocab_size != 0 ? vocab_size : max_id + 1;
    }

    std::string kind() const override { return "world"; }
    int64_t vocab_size() const override { return vocab_size_; }

    std::vector<int64_t> encode(const std::string &text) const override {
        std::vector<int64_t> ids;
        for (size_t pos = 0; pos < text.size();) {
            int32_t node = 0;
            size_t best_len = 0;
            int64_t best_id = -1;
            for (size_t j = pos; j < text.size(); ++j) {
                auto it = edges_.find(edge_key(node, static_cast<unsigned char>(text[j])));
                if (it == edges_.end()) break;
                node = it->second;
                if (nodes_[size_t(node)] >= 0) {
                    best_len = j - pos + 1;
                    best_id = nodes_[size_t(node)];
                }
            }
            if (best_id < 0) {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[pos]));
                throw Error("world tokenizer: byte " + std::string(hex) + " at offset " + std::to_string(pos) +
                            " starts no token of the vocabulary");
            }
            ids.push_back(best_id);
            pos += best_len;
        }
        return ids;
    }

    // Ids the vocabulary does not list (0 is RWKV's end-of-text token) decode to nothing.
    std::string decode(const std::vector<int64_t> &ids) const override {
        std::string s;
        for (int64_t id : ids) {
            if (id < 0 || id >= vocab_size_)
                throw Error("world tokenizer: token id " + std::to_string(id) + " out of range");
            if (auto it = tokens_.find(id); it != tokens_.end()) s += it->second;
        }
        return s;
    }

    Json to_json() const override { return {{"kind", "world"}, {"vocab", text_}, {"vocab_size", vocab_size_}}; }

private:
    static uint64_t edge_key(int32_t node, unsigned char byte) { return (uint64_t(uint32_t(node)) << 8) | byte; }

    static std::pair<int64_t, std::string> parse_line(const std::string &line, const std::string &at) {
        for (size_t i = 0; i < line.size();) {
            const size_t n = utf8_sequence_at(line, i);
            if (n == 0) throw Error(at + ": not valid UTF-8 text");
            i += n;
        }
        const size_t first = line.find(' '), last = line.rfind(' ');
        if (first == std::string::npos || last == first)
            throw Error(at + ": expected `ID LITERAL BYTE_LENGTH`");
        const int64_t id = parse_count(line.substr(0, first));
        if (id < 0 || id > kMaxWorldId) throw Error(at + ": the id is not a number from 0 to " + std::to_string(kMaxWorldId));
        const int64_t length = parse_count(line.substr(last + 1));
        if (length < 0) throw Error(at + ": the byte length is not a number");
        // Python's eval() ignores the spaces around the literal.
        const size_t lit_begin = line.find_first_not_of(' ', first), lit_end = line.find_last_not_of(' ', last);
        if (lit_begin >= last) throw Error(at + ": expected `ID LITERAL BYTE_LENGTH`");
        std::string bytes = parse_python_literal(line.substr(lit_begin, lit_end + 1 - lit_begin), at);
        if (bytes.empty()) throw Error(at + ": empty token");
        if (int64_t(bytes.size()) != length)
            throw Error(at + ": the literal is " + std::to_string(bytes.size()) + " bytes, the line says " +
                        std::to_string(length));
        return {id, std::move(bytes)};
    }

    void add(const std::string &bytes, int64_t id, const std::string &at) {
        int32_t node = 0;
        for (unsigned char b : bytes) {
            auto [it, inserted] = edges_.emplace(edge_key(node, b), int32_t(nodes_.size()));
            if (inserted) {
                if (nodes_.size() >= size_t(INT32_MAX)) throw Error(at + ": the vocabulary is too large");
                nodes_.push_back(-1);
            }
            node = it->second;
        }
        if (nodes_[size_t(node)] >= 0)
            throw Error(at + ": the same bytes as token " + std::to_string(nodes_[size_t(node)]));
        nodes_[size_t(node)] = id;
    }

    std::string text_; // the vocabulary file as given: to_json() carries it
    int64_t vocab_size_ = 0;
    std::map<int64_t, std::string> tokens_;
    // A byte trie: node 0 is the root, nodes_[n] the id ending at node n (-1: none).
    std::vector<int64_t> nodes_;
    std::unordered_map<uint64_t, int32_t> edges_;
};

} // namespace

std::shared_ptr<Tokenizer> make_world_tokenizer(const std::string &vocab_text, const std::string &where,
                                                int64_t vocab_size) {
    return std::make_shared<WorldTokenizer>(vocab_text, where, vocab_size);
}

std::shared_ptr<Tokenizer> world_from_json(const Json &j) {
    if (!j.contains("vocab") || !j.at("vocab").is_string())
        throw Error("tokenizer: a world tokenizer description needs its 'vocab' text");
    if (j.contains("vocab_size") && !j.at("vocab_size").is_number_integer())
        throw Error("tokenizer: a world tokenizer's 'vocab_size' must be an integer");
    return make_world_tokenizer(j.at("vocab").get<std::string>(), "tokenizer.json vocab",
                                j.value("vocab_size", int64_t(0)));
}

} // namespace cdrmix
