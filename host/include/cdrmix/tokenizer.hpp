// Tokenizers turn text into token ids and back. They serialise to JSON so a
// run's checkpoints carry the exact vocabulary they were trained with.
//
// Kinds: "byte", "char", "ids" (pre-tokenised data without a text form),
// "sentencepiece" (BPE or unigram) and "world" (RWKV's World vocabulary). to_json() writes {"kind": NAME, ...};
// tokenizer_from_json() turns that back into the same tokenizer.
//
// Threads, for every function below unless it says otherwise: callable from
// any thread. A Tokenizer is immutable once built, so one instance may encode
// and decode on several threads at once (data sources share theirs with their
// prefetch threads).
//
// Ownership: functions returning std::shared_ptr<Tokenizer> hand the caller a
// new tokenizer that nothing else references; data sources, models and
// checkpoints share it by copying the pointer.
//
// Errors: everything here throws cdrmix::Error, one line naming the file, key
// or token at fault, for what a user can get wrong (a missing or malformed
// file, a character outside a char vocabulary, an id out of range).
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
    // The kind's name, as in to_json()'s "kind".
    virtual std::string kind() const = 0;
    virtual int64_t vocab_size() const = 0;
    // Throws for text the vocabulary cannot express (a char tokenizer's unseen
    // character; any text for the "ids" kind).
    virtual std::vector<int64_t> encode(const std::string &text) const = 0;
    // Throws for an id outside [0, vocab_size()).
    virtual std::string decode(const std::vector<int64_t> &ids) const = 0;
    // Everything needed to rebuild this tokenizer; never throws.
    virtual Json to_json() const = 0;
};

// Bytes 0..255 are the tokens. Never throws.
std::shared_ptr<Tokenizer> make_byte_tokenizer();
// One token per distinct UTF-8 character of `corpus`, sorted by code point.
// Never throws (invalid UTF-8 becomes one token per byte).
std::shared_ptr<Tokenizer> make_char_tokenizer(const std::string &corpus);
// No text form: for pre-tokenised data whose tokenizer is unknown. encode()
// throws; decode() writes each id as a decimal number followed by a space.
// Throws when vocab_size < 1.
std::shared_ptr<Tokenizer> make_id_tokenizer(int64_t vocab_size);
// A sentencepiece model (BPE or unigram) from its serialised model proto (the
// bytes of a .model file). to_json() embeds the proto, so a checkpoint's
// tokenizer.json loads without the original file. Throws when the bytes are
// not a model, or when libcdrmix-sentencepiece.so is missing beside libcdrmix.
std::shared_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string &model_proto);
// The RWKV World tokenizer from the text of a vocabulary in RWKV-LM's
// rwkv_vocab_v20230424.txt format: lines `ID LITERAL BYTE_LENGTH`, the literal
// a Python str (encoded as UTF-8) or bytes literal whose length the line states.
// Encoding is greedy longest match over bytes. vocab_size 0 means the largest
// id + 1; a model's larger vocabulary may be given, and ids without a token
// (0 is RWKV's end of text) decode to nothing. to_json() carries the text.
// Throws, naming `where` and the line, for a malformed line, a literal whose
// bytes differ from its stated length, a repeated id or token, or an id that
// does not fit vocab_size; encode() throws for a byte that starts no token.
std::shared_ptr<Tokenizer> make_world_tokenizer(const std::string &vocab_text, const std::string &where,
                                                int64_t vocab_size = 0);

// Calls its argument once per piece of text in a corpus, so a char vocabulary
// can be collected without holding the corpus.
using CorpusVisitor = std::function<void(const std::function<void(const std::string &)> &)>;
// The tokenizer a data config names: "byte", "char" (vocabulary from the
// corpus, visited once, on the calling thread) or a tokenizer file (see
// load_tokenizer_file). Throws, prefixed with `where`, for anything else and
// for a "char" corpus without text; a file's own errors name the file.
std::shared_ptr<Tokenizer> tokenizer_from_spec(const std::string &spec, const CorpusVisitor &corpus,
                                               const std::string &where);
// Rebuilds a tokenizer from to_json() output. Throws for an unknown kind or a
// description missing what its kind needs.
std::shared_ptr<Tokenizer> tokenizer_from_json(const Json &j);
// A tokenizer file: JSON as written by to_json() when the name ends in ".json"
// (a checkpoint's tokenizer.json, `cdrmix tokenizer train` output), a World
// vocabulary when it ends in ".txt" (rwkv_vocab_v20230424.txt), else a
// sentencepiece .model. Throws naming the file when it cannot be read or is
// neither.
std::shared_ptr<Tokenizer> load_tokenizer_file(const std::string &path);
// Writes a tokenizer as JSON, or as a raw sentencepiece .model when the path
// ends in ".model", atomically (cdrmix/atomic_file.hpp). Throws naming the
// path when the write fails, or for ".model" and a tokenizer of another kind.
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
// returns true, or returns false when the corpus is exhausted; it is called on
// the calling thread, before this returns. One training at a time per process:
// sentencepiece's random seed is global.
// Throws for bad options (model type, vocab_size < 8) and for sentencepiece's
// own refusals (a vocabulary larger than the corpus allows), with its message.
std::shared_ptr<Tokenizer> train_sentencepiece(const std::function<bool(std::string &)> &next_sentence,
                                               const SentencepieceTraining &options);

} // namespace cdrmix
