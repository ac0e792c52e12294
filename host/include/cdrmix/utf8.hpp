// Well-formed UTF-8, as the Unicode standard defines it: no overlong forms, no
// surrogates, nothing above U+10FFFF, no truncated sequence. One definition for
// the host, the SDK and plugins (YAML configs, the World vocabulary, text
// corpora under the char tokenizer); header-only, so plugins need no symbol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cdrmix {

// The length of the well-formed sequence starting at s[i] (1 to 4), or 0 when none starts there.
inline size_t utf8_sequence_at(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    size_t n = 0;
    uint32_t cp = 0, min = 0;
    if ((c >> 5) == 0x6) n = 2, cp = c & 0x1f, min = 0x80;
    else if ((c >> 4) == 0xe) n = 3, cp = c & 0x0f, min = 0x800;
    else if ((c >> 3) == 0x1e) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n > s.size() - i) return 0;
    for (size_t k = 1; k < n; ++k) {
        if ((b(i + k) >> 6) != 0x2) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

// The offset of the first byte that is not part of a well-formed sequence, or npos.
inline size_t first_invalid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_sequence_at(s, i);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

} // namespace cdrmix
