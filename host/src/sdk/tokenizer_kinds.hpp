// The tokenizer kinds libcdrmix knows, in one table: how each is rebuilt from
// its to_json() form and, for the kinds a data config may name, built from
// that name. Dependencies go one way: tokenizer_file.cpp (files and specs)
// reads the table in tokenizer.cpp, which takes the sentencepiece kind's
// functions from tokenizer_sentencepiece.cpp.
#pragma once

#include <cdrmix/tokenizer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

struct TokenizerKind {
    const char *name; // to_json()'s "kind"
    std::shared_ptr<Tokenizer> (*from_json)(const Json &j);
    // For a data config's `tokenizer: NAME`; null when a config cannot name the kind.
    std::shared_ptr<Tokenizer> (*from_spec)(const CorpusVisitor &corpus, const std::string &where);
};

// The kind with this name, or nullptr.
const TokenizerKind *find_tokenizer_kind(const std::string &name);
// The kinds a data config may name, in table order.
std::vector<std::string> spec_tokenizer_kinds();

// In tokenizer_world.cpp.
std::shared_ptr<Tokenizer> world_from_json(const Json &j);

// In tokenizer_sentencepiece.cpp.
std::shared_ptr<Tokenizer> sentencepiece_from_json(const Json &j);
// The serialised model of a sentencepiece tokenizer; nullptr for another kind.
const std::string *sentencepiece_proto(const Tokenizer &tokenizer);

} // namespace cdrmix
