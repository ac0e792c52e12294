// The colours of runs and layers, declared once: the dashboard and `cdrmix plot`
// give a run the same colour (by the order the runs were given).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cdrmix::ui {

struct Rgb {
    uint8_t r, g, b;
};

// Okabe-Ito-like palette: distinguishable, and readable on a dark background.
Rgb palette_colour(size_t index);

// Moves a colour toward white by t in [0, 1].
Rgb lighten(Rgb c, double t);

// A layer's curve: with one run, the layers take the palette; with several, the
// run's colour, lighter for each later layer, so a run's layers read as a family.
Rgb layer_colour(size_t run, size_t runs, size_t layer, size_t layers);

// Evaluations (val loss) beside a run's train curve: the run's colour, lighter.
inline Rgb val_colour(Rgb run) { return lighten(run, 0.55); }

} // namespace cdrmix::ui
