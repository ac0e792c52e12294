#include "train/schedule.hpp"

#include <cdrmix/error.hpp>

#include <algorithm>
#include <cmath>

namespace cdrmix {

double LrSchedule::at(int64_t step) const {
    if (warmup_steps > 0 && step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
    if (kind == "constant") return lr;
    const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
    const double progress = std::clamp(double(step - warmup_steps) / double(span), 0.0, 1.0);
    if (kind == "linear") return lr + (min_lr - lr) * progress;
    if (kind == "cosine") return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
    throw Error("train: unknown schedule '" + kind + "' (use cosine, linear or constant)");
}

} // namespace cdrmix
