#include "bench/bench_table.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace cdrmix::bench {

double median_seconds(const std::function<void()> &f, int repeats) {
    f();
    std::vector<double> t;
    for (int i = 0; i < repeats; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

std::string format(const char *fmt, double value) {
    char buf[96];
    std::snprintf(buf, sizeof buf, fmt, value);
    return buf;
}

void print_row(const std::string &name, const std::string &figure, const std::string &baseline,
               const std::string &ratio) {
    std::printf("%-46s %-24s %-28s %s\n", name.c_str(), figure.c_str(), baseline.c_str(), ratio.c_str());
    std::fflush(stdout);
}

} // namespace cdrmix::bench
