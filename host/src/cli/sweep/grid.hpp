// The grid of `cdrmix sweep`: command-line overrides where a comma list
// (key=v1,v2,...) is an axis and a single value (key=value) applies to every
// run; the runs are the cartesian product of the axes (the first axis varies
// slowest), each repeated for every seed.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace cdrmix::sweep {

struct Axis {
    std::string key;
    std::vector<std::string> values;
};

struct Grid {
    std::vector<Axis> axes;
    std::vector<std::string> fixed; // "key=value", given to every run
    std::vector<std::string> seed_keys; // each set to the seed; empty without seeds
    int seeds = 0;                      // seeds 1..seeds
    size_t points() const;           // grid points (runs per seed)
};

// One run of the sweep.
struct Job {
    size_t point = 0;                                       // index of its grid point
    int seed = 0;                                           // 0 without seeds
    std::vector<std::pair<std::string, std::string>> axes;  // this point's value of each axis
    std::vector<std::string> overrides;                     // everything the run gets, key=value
    std::string folder;                                     // its folder's name inside the sweep's folder
};

// seed_keys: a comma list of the keys every seed sets (train.seed,data.seed).
// Throws cdrmix::Error naming the argument: not key=value, an empty key or
// value, a key given twice, a seed key given as an override with seeds > 0.
Grid parse_grid(const std::vector<std::string> &args, int seeds, const std::string &seed_keys);

std::vector<Job> expand(const Grid &grid);

} // namespace cdrmix::sweep
