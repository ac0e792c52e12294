// The element loops of the fused AdamW (fused_adamw.hpp), in a file of their
// own that includes no LibTorch header: it is compiled with -fno-math-errno
// (so sqrt vectorises) and each loop also has an AVX2 clone picked at load time.
#pragma once

#include <cstdint>

namespace cdrmix::kernels {

// One parameter's AdamW step, with the per-step scalars already computed.
template <typename T>
struct AdamWTask {
    T *param, *exp_avg, *exp_avg_sq;
    const T *grad;
    T decay; // 1 - lr * weight_decay
    // The betas and their complements, each rounded from double as AdamW's scalars are.
    T beta1, one_minus_beta1, beta2, one_minus_beta2;
    T step_size; // lr / bias_correction1
    T bias_correction2_sqrt, eps;
};

// AdamW's arithmetic on elements [begin, end), in AdamW's order (float results
// agree with torch::optim::AdamW to rounding):
// p *= decay; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g g;
// p -= step_size m / (sqrt(v) / sqrt(bias_correction2) + eps).
template <typename T>
void adamw(const AdamWTask<T> &task, int64_t begin, int64_t end);

// Sum of x[i]^2 over [begin, end), accumulated in double.
template <typename T>
double sum_of_squares(const T *x, int64_t begin, int64_t end);

// x[i] *= factor over [begin, end).
template <typename T>
void scale(T *x, T factor, int64_t begin, int64_t end);

} // namespace cdrmix::kernels
