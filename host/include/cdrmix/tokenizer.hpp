// Tokenizers turn text into token ids and back. They serialise to JSON so a
// run's checkpoints carry the exact vocabulary they were trained with.
#pragma once

#include <cdrmix/config.hpp>

#include <cstdint>
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
// Rebuilds a tokenizer from to_json() output.
std::shared_ptr<Tokenizer> tokenizer_from_json(const Json &j);

} // namespace cdrmix
