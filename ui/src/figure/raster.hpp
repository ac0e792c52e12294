// A figure drawn into pixels (for PNG files): anti-aliased lines and dots by
// coverage (distance from each pixel's centre to the shape), text from
// stb_easy_font's rectangles. No window, no GPU.
#pragma once

#include "figure/figure.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace cdrmix::ui {

class Canvas {
public:
    Canvas(int width, int height, Rgb background);
    int width() const { return width_; }
    int height() const { return height_; }
    const std::vector<uint8_t> &rgb() const { return rgb_; } // rows top to bottom, 3 bytes a pixel
    Rgb at(int x, int y) const;

    // Every shape is clipped to `clip` (and to the canvas); alpha scales its opacity.
    void fill_rect(const Rect &r, Rgb c, double alpha, const Rect &clip);
    void line(double x0, double y0, double x1, double y1, double width, Rgb c, double alpha, const Rect &clip);
    void disc(double cx, double cy, double radius, Rgb c, const Rect &clip);
    void text(double x, double y_top, const std::string &s, Rgb c);

private:
    void blend(int x, int y, Rgb c, double coverage);
    int width_, height_;
    std::vector<uint8_t> rgb_;
};

Canvas render_figure(const Figure &figure);

// The canvas as a PNG file's bytes (libpng); throws std::runtime_error with libpng's reason.
std::string encode_png(const Canvas &canvas);

} // namespace cdrmix::ui
