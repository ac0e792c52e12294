#include "figure/text.hpp"

#include <cmath>
#include <cstring>

#include <stb/stb_easy_font.h>

namespace cdrmix::ui {

namespace {

// stb_easy_font indexes its glyph table by (c - 32) with no check: anything
// else (UTF-8 bytes, control characters, newlines) must not reach it.
std::string printable(const std::string &text) {
    std::string s = text;
    for (char &c : s)
        if (c < 32 || c > 126) c = '?';
    return s;
}

} // namespace

double text_width(const std::string &text) {
    std::string s = printable(text);
    return stb_easy_font_width(s.data()) * kTextScale;
}

std::vector<Quad> text_quads(double x, double y, const std::string &text) {
    std::string s = printable(text);
    struct Vertex {
        float x, y, z;
        unsigned char colour[4];
    };
    static_assert(sizeof(Vertex) == 16, "stb_easy_font writes 16-byte vertices");
    // The font's densest glyphs take well under 32 quads of 4 vertices each (and print truncates, never overruns).
    std::vector<Vertex> vertices(s.size() * 32 * 4 + 4);
    const int quads = stb_easy_font_print(0, 0, s.data(), nullptr, vertices.data(),
                                          static_cast<int>(vertices.size() * sizeof(Vertex)));
    std::vector<Quad> out;
    out.reserve(static_cast<size_t>(quads));
    for (int q = 0; q < quads; ++q) {
        const Vertex &a = vertices[static_cast<size_t>(q) * 4], &c = vertices[static_cast<size_t>(q) * 4 + 2];
        out.push_back({x + a.x * kTextScale, y + a.y * kTextScale, x + c.x * kTextScale, y + c.y * kTextScale});
    }
    return out;
}

} // namespace cdrmix::ui
