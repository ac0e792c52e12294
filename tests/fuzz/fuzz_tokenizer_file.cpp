// load_tokenizer_file over arbitrary bytes, as a tokenizer JSON (any kind,
// the world kind's vocabulary included) or an RWKV World vocabulary .txt,
// picked by the first byte; a tokenizer that loads encodes and decodes text
// and its own vocabulary, and is rebuilt from its to_json().
#include "fuzz_util.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/tokenizer.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const std::string path = fuzz::write_input(data + 1, size - 1, data[0] & 1 ? "vocab.txt" : "tokenizer.json");
    std::shared_ptr<cdrmix::Tokenizer> tokenizer;
    try {
        tokenizer = cdrmix::load_tokenizer_file(path);
    } catch (const cdrmix::Error &) {
        return 0;
    }
    const std::string text(reinterpret_cast<const char *>(data + 1), size - 1);
    try {
        const std::vector<int64_t> ids = tokenizer->encode(text);
        (void)tokenizer->decode(ids);
    } catch (const cdrmix::Error &) {
    }
    try {
        std::vector<int64_t> every;
        for (int64_t id = 0; id < std::min<int64_t>(tokenizer->vocab_size(), 4096); ++id) every.push_back(id);
        (void)tokenizer->encode(tokenizer->decode(every));
    } catch (const cdrmix::Error &) {
    }
    try {
        (void)cdrmix::tokenizer_from_json(tokenizer->to_json());
    } catch (const cdrmix::Error &) {
        std::abort(); // what a tokenizer writes must load again
    }
    return 0;
}
