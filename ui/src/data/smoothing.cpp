#include "data/smoothing.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace cdrmix::ui {

std::vector<double> ema_smooth(const std::vector<double> &values, double weight) {
    const double w = std::isfinite(weight) ? std::clamp(weight, 0.0, 1.0) : 0.0;
    // TensorBoard returns constant series untouched (tensorboard#786: otherwise
    // the debiased EMA of a constant wobbles by rounding).
    if (std::adjacent_find(values.begin(), values.end(), std::not_equal_to<>()) == values.end()) return values;
    std::vector<double> out;
    out.reserve(values.size());
    double last = 0, w_pow_n = 1; // w^n as a running product: one multiply per point instead of a pow
    for (double y : values) {
        if (!std::isfinite(y)) {
            out.push_back(y);
            continue;
        }
        last = last * w + (1 - w) * y;
        w_pow_n *= w;
        // Starting from 0, a constant input c gives c * (1 - w^n): divide that factor out.
        const double debias = w == 1.0 ? 1.0 : 1.0 - w_pow_n;
        out.push_back(last / debias);
    }
    return out;
}

} // namespace cdrmix::ui
