// Tokenizers turn text into token ids and back. They serialise to JSON so a
// run's checkpoints carry the exact vocabulary they were trained with.
#pragma once

#include <cdrmix/config.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    virtual std::string kind() const = 0;
    virtual int64_t vocab_size() const = 0;
    virtual std::vector<int64_t> encode(const std::string &text) const = 0;
    virtual std::string decode(const std::vector<int64_t> &ids) const = 0;
    virtual Json to_json() const = 0;
};

// Bytes 0..255 are the tokens.
std::shared_ptr<Tokenizer> make_byte_tokenizer();
// One token per distinct UTF-8 character of `corpus`, sorted by code point.
std::shared_ptr<Tokenizer> make_char_tokenizer(const std::string &corpus);
// No text form: for pre-tokenised data whose tokenizer is unknown. encode()
// throws; decode() writes each id as a decimal number followed by a space.
std::shared_ptr<Tokenizer> make_id_tokenizer(int64_t vocab_size);
// A sentencepiece model (BPE or unigram) from its serialised model proto (the
// bytes of a .model file). to_json() embeds the proto, so a checkpoint's
// tokenizer.json loads without the original file.
std::shared_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string &model_proto);
// Calls its argument once per piece of text in a corpus, so a char vocabulary
// can be collected without holding the corpus.
using CorpusVisitor = std::function<void(const std::function<void(const std::string &)> &)>;
// The tokenizer a data config names: "byte", "char" (vocabulary from the
// corpus, visited once), or a tokenizer file (see load_tokenizer_file).
// `where` prefixes error messages.
std::shared_ptr<Tokenizer> tokenizer_from_spec(const std::string &spec, const CorpusVisitor &corpus,
                                               const std::string &where);
// Rebuilds a tokenizer from to_json() output.
std::shared_ptr<Tokenizer> tokenizer_from_json(const Json &j);
// A tokenizer file: a sentencepiece .model, or JSON as written by to_json()
// (a checkpoint's tokenizer.json, or `cdrmix tokenizer train` output).
std::shared_ptr<Tokenizer> load_tokenizer_file(const std::string &path);
// Writes a tokenizer as JSON, or as a raw sentencepiece .model when the path
// ends in ".model" (temp file + rename).
void save_tokenizer_file(const Tokenizer &tokenizer, const std::string &path);

struct SentencepieceTraining {
    int64_t vocab_size = 8000;
    std::string model_type = "bpe"; // "bpe" or "unigram"
    double character_coverage = 1.0;
    bool byte_fallback = true;      // unseen characters become byte tokens instead of <unk>
    int64_t max_sentences = 1000000; // sentences sampled from the corpus for training
    uint64_t seed = 1234;
};
// Trains a sentencepiece model in memory. next_sentence fills its argument and
// returns true, or returns false when the corpus is exhausted.
std::shared_ptr<Tokenizer> train_sentencepiece(const std::function<bool(std::string &)> &next_sentence,
                                               const SentencepieceTraining &options);

} // namespace cdrmix
