// libcdrmix-sentencepiece.so: sentencepiece behind the function table of
// sentencepiece_bridge.hpp (why it is a separate module is explained there).
#include "sentencepiece_bridge.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <exception>

// Exported by libsentencepiece but not declared in its public headers; without
// it every training run prints several hundred INFO lines.
namespace sentencepiece::logging {
void SetMinLogLevel(int level);
}

namespace {

using Processor = sentencepiece::SentencePieceProcessor;

// Feeds the trainer from a callback, so the corpus is never held twice. An
// exception from the callback (a malformed input line) ends the corpus and is
// reported after training returns.
class CallbackSentences final : public sentencepiece::SentenceIterator {
public:
    explicit CallbackSentences(const std::function<bool(std::string &)> &next) : next_(next) { Next(); }
    bool done() const override { return done_; }
    void Next() override {
        try {
            done_ = !next_(value_);
        } catch (const std::exception &e) {
            failure_ = e.what();
            done_ = true;
        }
    }
    const std::string &value() const override { return value_; }
    sentencepiece::util::Status status() const override { return {}; }
    const std::string &failure() const { return failure_; }

private:
    const std::function<bool(std::string &)> &next_;
    std::string value_, failure_;
    bool done_ = false;
};

void *load(const std::string &proto, std::string *error) {
    auto *p = new Processor();
    const auto status = p->LoadFromSerializedProto(proto);
    if (status.ok()) return p;
    *error = status.ToString();
    delete p;
    return nullptr;
}

void release(void *model) { delete static_cast<Processor *>(model); }

int vocab_size(const void *model) { return static_cast<const Processor *>(model)->GetPieceSize(); }

bool encode(const void *model, const std::string &text, std::vector<int> *ids, std::string *error) {
    const auto status = static_cast<const Processor *>(model)->Encode(text, ids);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
}

bool decode(const void *model, const std::vector<int> &ids, std::string *text, std::string *error) {
    const auto status = static_cast<const Processor *>(model)->Decode(ids, text);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
}

bool train(const std::unordered_map<std::string, std::string> &args, unsigned int seed,
           const std::function<bool(std::string &)> &next_sentence, std::string *proto, std::string *error) {
    sentencepiece::SetRandomGeneratorSeed(seed);
    sentencepiece::logging::SetMinLogLevel(1);
    CallbackSentences sentences(next_sentence);
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, proto);
    if (!sentences.failure().empty()) {
        *error = sentences.failure();
        return false;
    }
    if (!status.ok()) *error = status.ToString();
    return status.ok();
}

const cdrmix::SentencepieceApi kApi = {load, release, vocab_size, encode, decode, train};

} // namespace

extern "C" __attribute__((visibility("default"))) const cdrmix::SentencepieceApi *cdrmix_sentencepiece_api() {
    return &kApi;
}
