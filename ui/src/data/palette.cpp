#include "data/palette.hpp"

#include <cmath>

namespace cdrmix::ui {

namespace {
constexpr Rgb kPalette[] = {{86, 180, 233}, {230, 159, 0},  {0, 158, 115},   {240, 228, 66},
                            {204, 121, 167}, {213, 94, 0}, {160, 160, 255}, {200, 200, 200}};
constexpr size_t kPaletteSize = sizeof kPalette / sizeof kPalette[0];
} // namespace

Rgb palette_colour(size_t index) { return kPalette[index % kPaletteSize]; }

Rgb lighten(Rgb c, double t) {
    auto mix = [t](uint8_t v) { return static_cast<uint8_t>(std::lround(v + (255.0 - v) * t)); };
    return {mix(c.r), mix(c.g), mix(c.b)};
}

Rgb layer_colour(size_t run, size_t runs, size_t layer, size_t layers) {
    if (runs == 1) return palette_colour(layer);
    const double t = layers > 1 ? 0.5 * static_cast<double>(layer) / static_cast<double>(layers - 1) : 0.0;
    return lighten(palette_colour(run), t);
}

} // namespace cdrmix::ui
