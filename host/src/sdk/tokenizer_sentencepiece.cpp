// Sentencepiece (BPE or unigram) behind the SDK Tokenizer interface. The model
// proto travels inside to_json() as base64, so checkpoints are self-contained.
// Sentencepiece itself is reached through sentencepiece_bridge.hpp.
#include "sentencepiece_bridge.hpp"
#include "tokenizer_kinds.hpp"

#include <cdrmix/error.hpp>

#include <dlfcn.h>

#include <filesystem>

namespace cdrmix {

namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string &bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const size_t n = std::min<size_t>(3, bytes.size() - i);
        uint32_t v = 0;
        for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
        for (size_t k = 0; k < 4; ++k) out.push_back(k <= n ? kBase64[(v >> (18 - 6 * k)) & 63] : '=');
    }
    return out;
}

std::string base64_decode(const std::string &text) {
    int8_t value[256];
    std::fill(std::begin(value), std::end(value), int8_t(-1));
    for (int i = 0; i < 64; ++i) value[static_cast<unsigned char>(kBase64[i])] = static_cast<int8_t>(i);
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        if (c == '=') break;
        const int8_t v = value[static_cast<unsigned char>(c)];
        if (v < 0) throw Error("sentencepiece tokenizer: the embedded model is not valid base64");
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return out;
}

// The bridge module beside libcdrmix, opened once.
const SentencepieceApi &sentencepiece() {
    static const SentencepieceApi *api = [] {
        Dl_info self{};
        dladdr(reinterpret_cast<void *>(&cdrmix::make_sentencepiece_tokenizer), &self);
        const std::string path =
            (std::filesystem::path(self.dli_fname ? self.dli_fname : "").parent_path() / "libcdrmix-sentencepiece.so").string();
        void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (!handle) throw Error(std::string("sentencepiece support is missing: ") + dlerror());
        auto entry = reinterpret_cast<decltype(&cdrmix_sentencepiece_api)>(dlsym(handle, "cdrmix_sentencepiece_api"));
        if (!entry) throw Error(path + ": not the cdrmix sentencepiece module");
        return entry();
    }();
    return *api;
}

class SentencepieceTokenizer final : public Tokenizer {
public:
    explicit SentencepieceTokenizer(std::string proto) : proto_(std::move(proto)) {
        std::string error;
        model_ = sentencepiece().load(proto_, &error);
        if (!model_) throw Error("sentencepiece tokenizer: cannot load the model: " + error);
    }
    ~SentencepieceTokenizer() override { sentencepiece().release(model_); }
    SentencepieceTokenizer(const SentencepieceTokenizer &) = delete;
    SentencepieceTokenizer &operator=(const SentencepieceTokenizer &) = delete;

    std::string kind() const override { return "sentencepiece"; }
    int64_t vocab_size() const override { return sentencepiece().vocab_size(model_); }
    std::vector<int64_t> encode(const std::string &text) const override {
        std::vector<int> ids;
        std::string error;
        if (!sentencepiece().encode(model_, text, &ids, &error)) throw Error("sentencepiece tokenizer: " + error);
        return std::vector<int64_t>(ids.begin(), ids.end());
    }
    std::string decode(const std::vector<int64_t> &ids) const override {
        std::vector<int> narrow;
        narrow.reserve(ids.size());
        const int64_t vocab = vocab_size();
        for (int64_t id : ids) {
            if (id < 0 || id >= vocab)
                throw Error("sentencepiece tokenizer: token id " + std::to_string(id) + " out of range");
            narrow.push_back(static_cast<int>(id));
        }
        std::string text, error;
        if (!sentencepiece().decode(model_, narrow, &text, &error)) throw Error("sentencepiece tokenizer: " + error);
        return text;
    }
    Json to_json() const override {
        return {{"kind", "sentencepiece"}, {"vocab_size", vocab_size()}, {"model", base64_encode(proto_)}};
    }
    const std::string &proto() const { return proto_; }

private:
    std::string proto_;
    void *model_ = nullptr;
};

} // namespace

std::shared_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string &model_proto) {
    return std::make_shared<SentencepieceTokenizer>(model_proto);
}

std::shared_ptr<Tokenizer> sentencepiece_from_json(const Json &j) {
    if (!j.contains("model") || !j.at("model").is_string())
        throw Error("tokenizer: a sentencepiece description needs a base64 'model' string");
    return make_sentencepiece_tokenizer(base64_decode(j.at("model").get<std::string>()));
}

const std::string *sentencepiece_proto(const Tokenizer &tokenizer) {
    const auto *sp = dynamic_cast<const SentencepieceTokenizer *>(&tokenizer);
    return sp ? &sp->proto() : nullptr;
}

std::shared_ptr<Tokenizer> train_sentencepiece(const std::function<bool(std::string &)> &next_sentence,
                                               const SentencepieceTraining &o) {
    if (o.model_type != "bpe" && o.model_type != "unigram")
        throw Error("tokenizer train: model type must be \"bpe\" or \"unigram\", got \"" + o.model_type + "\"");
    if (o.vocab_size < 8) throw Error("tokenizer train: vocab size must be at least 8");
    const std::unordered_map<std::string, std::string> args = {
        {"model_type", o.model_type},
        {"vocab_size", std::to_string(o.vocab_size)},
        {"character_coverage", std::to_string(o.character_coverage)},
        {"byte_fallback", o.byte_fallback ? "true" : "false"},
        {"input_sentence_size", std::to_string(o.max_sentences)},
        {"shuffle_input_sentence", "true"},
        // Sentencepiece's default drops sentences over 4192 bytes; documents are often longer.
        {"max_sentence_length", "1000000"},
        // Leave newlines and runs of spaces alone: code and poetry keep their layout.
        {"normalization_rule_name", "identity"},
        {"remove_extra_whitespaces", "false"},
        {"split_digits", "true"},
        // No space glued to the front of every encode() call: text encoded in pieces (lines,
        // records) gives the same tokens as the whole, and decodes back to the same text.
        {"add_dummy_prefix", "false"},
    };
    std::string proto, error;
    if (!sentencepiece().train(args, static_cast<unsigned int>(o.seed), next_sentence, &proto, &error))
        throw Error("tokenizer train: " + error);
    return make_sentencepiece_tokenizer(proto);
}

} // namespace cdrmix
