// Text for raster figures: stb_easy_font's quads (ASCII, no font file), scaled.
// Layout and drawing measure text with the same function, so labels fit.
#pragma once

#include <string>
#include <vector>

namespace cdrmix::ui {

inline constexpr double kTextScale = 1.5;   // stb_easy_font's glyphs are about 7 px tall
inline constexpr double kTextHeight = 10.5; // cap height after scaling
inline constexpr double kLineHeight = 18;

struct Quad {
    double x0, y0, x1, y1;
};

// Width in pixels of one line of text.
double text_width(const std::string &text);

// The rectangles that draw `text` with its top-left corner at (x, y). Bytes
// outside printable ASCII are drawn as '?' (the font has no other glyphs).
std::vector<Quad> text_quads(double x, double y, const std::string &text);

} // namespace cdrmix::ui
