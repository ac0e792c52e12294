// The RWKV World tokenizer: a small vocabulary in rwkv_vocab_v20230424.txt's
// format, encodings worked out by hand (greedy longest match over bytes),
// Python literal escapes, and each malformed line named.
#include "test_util.hpp"

#include <cdrmix/tokenizer.hpp>

#include <fstream>

using cdrmix::test::error_of;
using Ids = std::vector<int64_t>;

namespace {

// Python str literals become their UTF-8 bytes ('\x80' is U+0080: two bytes),
// bytes literals their bytes; the last field is the byte count.
const char *kVocab = R"(1 'a' 1
2 'b' 1
3 'ab' 2
4 'abc' 3
5 ' ' 1
6 '\n' 1
7 b'\xe4' 1
8 '中' 3
9 '\u4e2d\u6587' 6
10 "'" 1
11 '\\' 1
12 '\x80' 2
13 b'\x80' 1
14 'c' 1
15 b'\u12' 4
16 ' "a"' 4
17 '\t\101' 2
19 'é' 2
)";

std::shared_ptr<cdrmix::Tokenizer> world() { return cdrmix::make_world_tokenizer(kVocab, "vocab.txt"); }

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int c : b) s.push_back(static_cast<char>(c));
    return s;
}

} // namespace

TEST(WorldTokenizer, GreedyLongestMatchOverBytes) {
    auto t = world();
    EXPECT_EQ(t->kind(), "world");
    EXPECT_EQ(t->vocab_size(), 20); // the largest id + 1; 0 and 18 have no token
    // "abcab c": "abc" beats "ab" and "a", then "ab" (no "abc" follows), " ", "c".
    EXPECT_EQ(t->encode("abcab c"), (Ids{4, 3, 5, 14}));
    // "中文" is one token; "中" alone its own; a lone byte e4 only the bytes token.
    EXPECT_EQ(t->encode("中文"), (Ids{9}));
    EXPECT_EQ(t->encode("中中文"), (Ids{8, 9}));
    EXPECT_EQ(t->encode(bytes({0xe4})), (Ids{7}));
    // U+0080 as a str literal is c2 80; the bytes literal b'\x80' is the byte 80 alone.
    EXPECT_EQ(t->encode(bytes({0xc2, 0x80, 0x80})), (Ids{12, 13}));
    EXPECT_EQ(t->encode("'\\\n"), (Ids{10, 11, 6}));
    EXPECT_EQ(t->encode(" \"a\" a"), (Ids{16, 5, 1}));
    EXPECT_EQ(t->encode("\tA"), (Ids{17}));
    EXPECT_EQ(t->encode("\\u12"), (Ids{15})); // \u is no escape in bytes: the backslash stays
    EXPECT_EQ(t->encode("é"), (Ids{19}));
}

TEST(WorldTokenizer, DecodesBytesAndUnlistedIdsToNothing) {
    auto t = world();
    EXPECT_EQ(t->decode({4, 5, 9, 13}), "abc 中文" + bytes({0x80}));
    EXPECT_EQ(t->decode({0, 18, 1}), "a"); // 0 (end of text) and the gap 18 have no bytes
    EXPECT_NE(error_of([&] { t->decode({20}); }).find("token id 20 out of range"), std::string::npos);
    const std::string text = "ab c\n中文'\\" + bytes({0x80});
    EXPECT_EQ(t->decode(t->encode(text)), text);
}

TEST(WorldTokenizer, AByteNoTokenStartsIsNamed) {
    EXPECT_NE(error_of([] { world()->encode("abd"); }).find("byte 0x64 at offset 2 starts no token"), std::string::npos);
}

TEST(WorldTokenizer, TravelsInItsJsonWithTheModelsVocabularySize) {
    auto t = cdrmix::make_world_tokenizer(kVocab, "vocab.txt", 64);
    EXPECT_EQ(t->vocab_size(), 64);
    EXPECT_EQ(t->decode({40}), "");
    auto back = cdrmix::tokenizer_from_json(cdrmix::Json::parse(t->to_json().dump()));
    EXPECT_EQ(back->kind(), "world");
    EXPECT_EQ(back->vocab_size(), 64);
    EXPECT_EQ(back->encode("abcab c中文"), t->encode("abcab c中文"));
    EXPECT_NE(error_of([] { cdrmix::make_world_tokenizer(kVocab, "vocab.txt", 19); })
                  .find("vocab.txt: token id 19 does not fit a vocabulary of 19"),
              std::string::npos);
}

TEST(WorldTokenizer, LoadsFromATxtFile) {
    const auto dir = cdrmix::test::scratch_dir("world_vocab");
    const std::string path = (dir / "rwkv_vocab_test.txt").string();
    std::ofstream(path) << kVocab;
    auto t = cdrmix::load_tokenizer_file(path);
    EXPECT_EQ(t->kind(), "world");
    EXPECT_EQ(t->encode("abc"), (Ids{4}));
}

TEST(WorldTokenizer, EachMalformedLineIsNamed) {
    auto message = [](const std::string &text) {
        return error_of([&] { cdrmix::make_world_tokenizer(text, "v.txt"); });
    };
    auto expect = [&](const std::string &text, const std::string &part) {
        const std::string m = message(text);
        EXPECT_NE(m.find(part), std::string::npos) << text << " -> " << m;
    };
    expect("1 'a' 1\n2 '\\x80' 1\n", "v.txt:2: the literal is 2 bytes, the line says 1");
    expect("1 'a' 1\n1 'b' 1\n", "v.txt:2: id 1 appears twice");
    expect("1 'a' 1\n2 b'a' 1\n", "v.txt:2: the same bytes as token 1");
    expect("1 a 1\n", "v.txt:1: expected a Python str or bytes literal");
    expect("1 'a 1\n", "v.txt:1: the literal has no closing quote");
    expect("1 'a'b 2\n", "v.txt:1: text after the closing quote");
    expect("1 '\\x8' 1\n", "v.txt:1: a \\x escape needs 2 hex digits");
    expect("1 '\\ud800' 3\n", "v.txt:1: \\u escape of a code point UTF-8 cannot encode");
    expect("1 b'\xc3\xa9' 2\n", "v.txt:1: a bytes literal holds a non-ASCII character");
    expect("1 '\xff' 1\n", "v.txt:1: not valid UTF-8");
    expect("x 'a' 1\n", "v.txt:1: the id is not a number");
    expect("1 'a' one\n", "v.txt:1: the byte length is not a number");
    expect("1 'a'\n", "v.txt:1: expected `ID LITERAL BYTE_LENGTH`");
    expect("1 '' 0\n", "v.txt:1: empty token");
    expect("\n\n", "v.txt: no tokens");
}
