// Learning-rate schedule: linear warm-up from 0 to lr over warmup_steps, then
// "cosine" (to min_lr at total_steps), "linear" (to min_lr) or "constant".
// Its keys are declared once, in schedule_schema(), and shared by the stock
// trainer and cdrmix.schedule{} (same names, same defaults).
#pragma once

#include <cdrmix/schema.hpp>

#include <cstdint>
#include <string>

namespace cdrmix {

struct LrSchedule {
    double lr = 0;
    double min_lr = 0;
    int64_t warmup_steps = 0;
    int64_t total_steps = 1;
    std::string kind = "cosine";

    // From a config already resolved by schedule_schema() (or a schema that includes it).
    static LrSchedule from_config(const Config &resolved);
    // step is 0-based: the learning rate used for the (step+1)-th update.
    double at(int64_t step) const;
};

// The peak learning rate: one key shared by the schedule and the optimiser.
const Schema &lr_schema();
// lr, min_lr, warmup_steps, schedule (alias kind), steps.
const Schema &schedule_schema();
// The same without lr, for schemas that include lr_schema() themselves.
const Schema &schedule_only_schema();

} // namespace cdrmix
