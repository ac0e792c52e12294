// Tokenizers: byte, char and sentencepiece round trips, serialisation through
// the SDK interface (what checkpoints store), files, and sentencepiece training.
#include <cdrmix/error.hpp>
#include <cdrmix/tokenizer.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <unistd.h>

using cdrmix::Json;
namespace fs = std::filesystem;

namespace {

const std::string kSample = "Hello, wörld! ∑ 12345\n\ttabs  and  spaces\n";

// A small corpus of made-up words with some repetition, so merges have something to learn.
std::vector<std::string> corpus() {
    const char *syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "zu", "wö", "∑e", "ph", "qu"};
    std::vector<std::string> lines;
    uint32_t state = 7;
    for (int i = 0; i < 800; ++i) {
        std::string line;
        for (int w = 0; w < 10; ++w) {
            state = state * 1664525u + 1013904223u;
            const int length = 1 + static_cast<int>((state >> 8) % 3);
            for (int k = 0; k < length; ++k) line += syllables[(state >> (12 + 4 * k)) % 13];
            line += w < 9 ? " " : "";
        }
        lines.push_back(line + " " + std::to_string(i));
    }
    return lines;
}

std::shared_ptr<cdrmix::Tokenizer> train(const std::string &type, int64_t vocab) {
    auto lines = corpus();
    size_t next = 0;
    cdrmix::SentencepieceTraining o;
    o.vocab_size = vocab;
    o.model_type = type;
    return cdrmix::train_sentencepiece(
        [&](std::string &s) {
            if (next == lines.size()) return false;
            s = lines[next++];
            return true;
        },
        o);
}

std::string temp_path(const std::string &name) {
    const fs::path dir = fs::temp_directory_path() / ("cdrmix_tok_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return (dir / name).string();
}

// Encode/decode round trip, and the same ids after to_json -> tokenizer_from_json.
void expect_round_trip(const cdrmix::Tokenizer &tok, const std::string &text) {
    const auto ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text) << tok.kind();
    for (int64_t id : ids) EXPECT_TRUE(id >= 0 && id < tok.vocab_size()) << id;
    auto back = cdrmix::tokenizer_from_json(Json::parse(tok.to_json().dump()));
    EXPECT_EQ(back->kind(), tok.kind());
    EXPECT_EQ(back->vocab_size(), tok.vocab_size());
    EXPECT_EQ(back->encode(text), ids);
}

} // namespace

TEST(Tokenizer, ByteAndCharRoundTrip) {
    expect_round_trip(*cdrmix::make_byte_tokenizer(), kSample);
    auto chars = cdrmix::make_char_tokenizer(kSample);
    expect_round_trip(*chars, kSample);
    // One token per character, multi-byte characters included.
    EXPECT_EQ(chars->encode("ö∑").size(), 2u);
    EXPECT_THROW(chars->encode("Z"), cdrmix::Error);
}

TEST(Tokenizer, SpecPicksByteCharOrFile) {
    auto visit = [](const auto &sink) { sink("abcab"); };
    EXPECT_EQ(cdrmix::tokenizer_from_spec("byte", visit, "data")->vocab_size(), 256);
    EXPECT_EQ(cdrmix::tokenizer_from_spec("char", visit, "data")->vocab_size(), 3);
    const std::string path = temp_path("chars.json");
    cdrmix::save_tokenizer_file(*cdrmix::make_char_tokenizer("xyz"), path);
    EXPECT_EQ(cdrmix::tokenizer_from_spec(path, visit, "data")->encode("zyx"), (std::vector<int64_t>{2, 1, 0}));
    try {
        cdrmix::tokenizer_from_spec("no/such/tokenizer.json", visit, "data (x.lua)");
        FAIL() << "no error";
    } catch (const cdrmix::Error &e) {
        EXPECT_STREQ(e.what(), "data (x.lua): key 'tokenizer' must be \"byte\", \"char\" or a tokenizer file, got "
                               "\"no/such/tokenizer.json\"");
    }
}

TEST(Tokenizer, IdsDecodeButDoNotEncode) {
    auto ids = cdrmix::make_id_tokenizer(50304);
    EXPECT_EQ(ids->decode({1, 22}), "1 22 ");
    EXPECT_THROW(ids->encode("x"), cdrmix::Error);
    EXPECT_EQ(cdrmix::tokenizer_from_json(ids->to_json())->vocab_size(), 50304);
}

TEST(Tokenizer, SentencepieceTrainsAndRoundTrips) {
    for (const std::string type : {"bpe", "unigram"}) {
        SCOPED_TRACE(type);
        auto tok = train(type, 400);
        EXPECT_EQ(tok->kind(), "sentencepiece");
        EXPECT_EQ(tok->vocab_size(), 400);
        const std::string line = corpus()[5];
        // Merges learned: a frequent line takes far fewer tokens than characters.
        EXPECT_LT(tok->encode(line).size(), line.size() / 2);
        expect_round_trip(*tok, line);
        // Encoding in pieces split at newlines (lines, records) gives the tokens of the whole.
        const std::string a = corpus()[1] + "\n", b = corpus()[2] + "\n";
        auto pieces = tok->encode(a);
        const auto tail = tok->encode(b);
        pieces.insert(pieces.end(), tail.begin(), tail.end());
        EXPECT_EQ(pieces, tok->encode(a + b));
        expect_round_trip(*tok, "  leading spaces\n\nand blank lines\n");
        // Byte fallback: characters never seen in training still round-trip.
        expect_round_trip(*tok, "Ωmega ✓ new");
    }
}

TEST(Tokenizer, SentencepieceTravelsWithoutTheOriginalFile) {
    auto tok = train("bpe", 400);
    const std::string json_path = temp_path("tok.json"), model_path = temp_path("tok.model");
    cdrmix::save_tokenizer_file(*tok, json_path);
    cdrmix::save_tokenizer_file(*tok, model_path);
    const std::string text = corpus()[3] + " kalo 42";
    // tokenizer.json as a checkpoint writes it (to_json), and a raw .model for other tools.
    EXPECT_EQ(cdrmix::load_tokenizer_file(json_path)->encode(text), tok->encode(text));
    EXPECT_EQ(cdrmix::load_tokenizer_file(model_path)->encode(text), tok->encode(text));
    for (const auto &entry : fs::directory_iterator(fs::path(json_path).parent_path()))
        EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path(); // none left behind
    EXPECT_THROW(cdrmix::save_tokenizer_file(*cdrmix::make_byte_tokenizer(), temp_path("byte.model")), cdrmix::Error);
    std::ofstream(temp_path("junk.model")) << "not a model";
    try {
        cdrmix::load_tokenizer_file(temp_path("junk.model"));
        FAIL() << "no error";
    } catch (const cdrmix::Error &e) {
        EXPECT_NE(std::string(e.what()).find("junk.model: not a sentencepiece model or tokenizer JSON"), std::string::npos)
            << e.what();
    }
}

TEST(Tokenizer, SentencepieceTrainingRejectsBadSettings) {
    EXPECT_THROW(train("wordpiece", 400), cdrmix::Error);
    EXPECT_THROW(train("bpe", 4), cdrmix::Error);
}
