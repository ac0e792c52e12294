// The bin data source's token files over arbitrary bytes: map_token_file's
// size checks, then every token read back through a slice and a concatenation
// as the data source reads its train and val splits. The first byte picks
// the dtype and a vocabulary, so both the accepting and the refusing paths of
// the vocabulary check are reached.
#include "fuzz_util.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/token_sequence.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const auto dtype = data[0] & 1 ? cdrmix::TokenDtype::U32 : cdrmix::TokenDtype::U16;
    const int64_t vocab = data[0] & 2 ? 256 : int64_t(1) << 32;
    const std::string path = fuzz::write_input(data + 1, size - 1, "tokens.bin");
    std::shared_ptr<cdrmix::TokenSequence> tokens;
    try {
        tokens = cdrmix::map_token_file(path, dtype, vocab);
    } catch (const cdrmix::Error &) {
        return 0;
    }
    const int64_t n = tokens->size();
    if (n != int64_t(size - 1) / cdrmix::token_dtype_bytes(dtype)) std::abort();
    const int64_t split = n / 2;
    const auto both = cdrmix::concat_tokens({cdrmix::slice_tokens(tokens, 0, split), cdrmix::slice_tokens(tokens, split, n)});
    std::vector<int64_t> out(size_t(n), -1);
    try {
        both->read(0, n, out.data());
    } catch (const cdrmix::Error &) {
        return 0;
    }
    for (int64_t id : out)
        if (id < 0 || id >= vocab) std::abort();
    return 0;
}
