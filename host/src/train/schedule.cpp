#include "train/schedule.hpp"

#include <cdrmix/error.hpp>

#include <algorithm>
#include <cmath>

namespace cdrmix {

const Schema &lr_schema() {
    static const Schema s = [] {
        Schema k;
        k.number("lr", 1e-3, "peak learning rate").min(1e-12);
        return k;
    }();
    return s;
}

const Schema &schedule_only_schema() {
    static const Schema s = [] {
        Schema k;
        k.integer("steps", 1000, "optimiser steps (the schedule's length)").min(1);
        k.number("min_lr", nullptr, "learning rate at the end of the decay").min(0).default_is("lr / 10");
        k.integer("warmup_steps", nullptr, "linear warm-up from 0 to lr").min(0).default_is("min(100, steps / 10)");
        k.string("schedule", "cosine", "decay after the warm-up").one_of({"cosine", "linear", "constant"}).alias("kind");
        return k;
    }();
    return s;
}

const Schema &schedule_schema() {
    static const Schema s = [] {
        Schema k("Learning-rate schedule: linear warm-up, then cosine, linear or constant");
        k.include(lr_schema()).include(schedule_only_schema());
        return k;
    }();
    return s;
}

LrSchedule LrSchedule::from_config(const Config &c) {
    LrSchedule s;
    s.lr = c.get_double("lr");
    s.total_steps = c.get_int("steps");
    s.min_lr = c.has("min_lr") ? c.get_double("min_lr") : s.lr * 0.1;
    s.warmup_steps = c.has("warmup_steps") ? c.get_int("warmup_steps") : std::min<int64_t>(100, s.total_steps / 10);
    s.kind = c.get_string("schedule");
    return s;
}

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
