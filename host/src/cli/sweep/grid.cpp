#include "cli/sweep/grid.hpp"

#include <cdrmix/error.hpp>

#include <algorithm>
#include <cstdio>

namespace cdrmix::sweep {

namespace {

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t at; (at = s.find(sep, start)) != std::string::npos; start = at + 1) out.push_back(s.substr(start, at - start));
    out.push_back(s.substr(start));
    return out;
}

} // namespace

size_t Grid::points() const {
    size_t n = 1;
    for (const auto &a : axes) n *= a.values.size();
    return n;
}

Grid parse_grid(const std::vector<std::string> &args, int seeds, const std::string &seed_keys) {
    Grid g;
    g.seeds = seeds;
    if (seeds > 0) g.seed_keys = split(seed_keys, ',');
    for (const auto &k : g.seed_keys)
        if (k.empty()) throw Error("sweep: --seed-key '" + seed_keys + "': an empty key in the list");
    std::vector<std::string> keys;
    for (const auto &arg : args) {
        const size_t eq = arg.find('=');
        if (eq == std::string::npos || eq == 0)
            throw Error("sweep: '" + arg + "': expected key=value (one value for every run) or key=v1,v2,... (an axis)");
        const std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
        if (std::find(keys.begin(), keys.end(), key) != keys.end())
            throw Error("sweep: '" + key + "' is given twice; give one list of its values (" + key + "=a,b)");
        if (std::find(g.seed_keys.begin(), g.seed_keys.end(), key) != g.seed_keys.end())
            throw Error("sweep: '" + arg + "': --seeds sets " + key + " (1.." + std::to_string(seeds) +
                        "); drop one of them");
        keys.push_back(key);
        std::vector<std::string> values = split(value, ',');
        for (const auto &v : values)
            if (v.empty()) throw Error("sweep: '" + arg + "': an empty value in the list");
        if (values.size() == 1) g.fixed.push_back(arg);
        else g.axes.push_back({key, std::move(values)});
    }
    return g;
}

std::vector<Job> expand(const Grid &g) {
    std::vector<Job> jobs;
    const size_t points = g.points();
    for (size_t p = 0; p < points; ++p) {
        Job base;
        base.point = p;
        // Mixed radix, last axis fastest.
        size_t rest = p;
        std::vector<size_t> index(g.axes.size());
        for (size_t a = g.axes.size(); a-- > 0;) {
            index[a] = rest % g.axes[a].values.size();
            rest /= g.axes[a].values.size();
        }
        base.overrides = g.fixed;
        for (size_t a = 0; a < g.axes.size(); ++a) {
            base.axes.push_back({g.axes[a].key, g.axes[a].values[index[a]]});
            base.overrides.push_back(g.axes[a].key + "=" + g.axes[a].values[index[a]]);
        }
        char name[32];
        std::snprintf(name, sizeof name, "point-%03zu", p + 1);
        for (int s = g.seeds > 0 ? 1 : 0; s <= g.seeds; ++s) {
            Job job = base;
            job.folder = name;
            if (s > 0) {
                job.seed = s;
                for (const auto &k : g.seed_keys) job.overrides.push_back(k + "=" + std::to_string(s));
                job.folder += "-seed-" + std::to_string(s);
            }
            jobs.push_back(std::move(job));
        }
    }
    return jobs;
}

} // namespace cdrmix::sweep
