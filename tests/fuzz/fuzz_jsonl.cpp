// The jsonl data source's reader over arbitrary bytes: JsonlLines splits the
// file into lines, and every line goes through record_tokens and record_text
// as the data source reads it. The first byte picks the record format and the
// tokenizer (bytes, or bare ids of a small vocabulary), so the field
// selection, attention masks and vocabulary checks are all reached.
#include "fuzz_util.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/jsonl.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static const char *const fields[] = {"", "text", "tokens", "input_ids"};
    cdrmix::RecordFormat format;
    format.field = fields[data[0] & 3];
    format.eos_id = data[0] & 4 ? 0 : -1;
    static const auto bytes = cdrmix::make_byte_tokenizer(), ids = cdrmix::make_id_tokenizer(1000);
    const cdrmix::Tokenizer &tokenizer = data[0] & 8 ? *ids : *bytes;

    const std::string path = fuzz::write_input(data + 1, size - 1, "data.jsonl");
    cdrmix::JsonlLines lines(path);
    std::string line;
    std::vector<int64_t> tokens;
    while (lines.next(line)) {
        try {
            cdrmix::record_tokens(line, tokenizer, format, path, lines.line(), tokens);
        } catch (const cdrmix::Error &) {
        }
        try {
            std::string text;
            cdrmix::record_text(line, format, path, lines.line(), text);
        } catch (const cdrmix::Error &) {
        }
    }
    for (int64_t id : tokens)
        if (id < 0 || id >= tokenizer.vocab_size()) std::abort(); // a token the reader let through is in the vocabulary
    return 0;
}
