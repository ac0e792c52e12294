// The boundary between libcdrmix and sentencepiece. Debian's libsentencepiece
// carries its own copy of protobuf-lite and exports it; LibTorch links the
// system libprotobuf. In one symbol scope the two copies bind to each other and
// the process crashes while loading. So sentencepiece lives in its own module
// (libcdrmix-sentencepiece.so, beside libcdrmix) that libcdrmix opens with
// RTLD_LOCAL | RTLD_DEEPBIND, and this table of functions is all that crosses.
// No exception crosses it either: failures come back as messages.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cdrmix {

struct SentencepieceApi {
    void *(*load)(const std::string &model_proto, std::string *error); // nullptr on failure
    void (*release)(void *model);
    int (*vocab_size)(const void *model);
    bool (*encode)(const void *model, const std::string &text, std::vector<int> *ids, std::string *error);
    bool (*decode)(const void *model, const std::vector<int> &ids, std::string *text, std::string *error);
    bool (*train)(const std::unordered_map<std::string, std::string> &args, unsigned int seed,
                  const std::function<bool(std::string &)> &next_sentence, std::string *model_proto,
                  std::string *error);
};

} // namespace cdrmix

extern "C" const cdrmix::SentencepieceApi *cdrmix_sentencepiece_api();
