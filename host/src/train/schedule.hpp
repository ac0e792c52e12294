#pragma once

#include <cstdint>
#include <string>

namespace cdrmix {

// Learning-rate schedule: linear warm-up from 0 to lr over warmup_steps, then
// "cosine" (to min_lr at total_steps), "linear" (to min_lr) or "constant".
struct LrSchedule {
    double lr = 1e-3;
    double min_lr = 1e-4;
    int64_t warmup_steps = 0;
    int64_t total_steps = 1;
    std::string kind = "cosine";

    // step is 0-based: the learning rate used for the (step+1)-th update.
    double at(int64_t step) const;
};

} // namespace cdrmix
