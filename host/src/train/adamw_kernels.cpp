#include "train/adamw_kernels.hpp"

#include <cmath>

namespace cdrmix::kernels {

#define CDRMIX_CLONES __attribute__((target_clones("avx2", "default")))

namespace {

template <typename T>
CDRMIX_CLONES void adamw_loop(const AdamWTask<T> &t, int64_t begin, int64_t end) {
    // Scalars in locals: stores through the float pointers could otherwise
    // alias the task's fields, which keeps the compiler from vectorising.
    const T beta1 = t.beta1, beta2 = t.beta2, decay = t.decay, bc2_sqrt = t.bias_correction2_sqrt, eps = t.eps;
    const T one_minus_beta1 = t.one_minus_beta1, one_minus_beta2 = t.one_minus_beta2, neg_step = -t.step_size;
    T *__restrict p = t.param;
    T *__restrict m = t.exp_avg;
    T *__restrict v = t.exp_avg_sq;
    const T *__restrict g = t.grad;
    for (int64_t i = begin; i < end; ++i) {
        const T mi = m[i] * beta1 + one_minus_beta1 * g[i];
        const T vi = v[i] * beta2 + one_minus_beta2 * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay + neg_step * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    }
}

template <typename T>
CDRMIX_CLONES double squares_loop(const T *__restrict x, int64_t begin, int64_t end) {
    // Eight independent sums, so the additions pipeline (and vectorise) without
    // reassociating one long chain; the result is the same on every run.
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = begin;
    for (; i + 8 <= end; i += 8)
        for (int k = 0; k < 8; ++k) s[k] += double(x[i + k]) * double(x[i + k]);
    for (; i < end; ++i) s[0] += double(x[i]) * double(x[i]);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <typename T>
CDRMIX_CLONES void scale_loop(T *__restrict x, T factor, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= factor;
}

} // namespace

template <typename T>
void adamw(const AdamWTask<T> &task, int64_t begin, int64_t end) {
    adamw_loop(task, begin, end);
}

template <typename T>
double sum_of_squares(const T *x, int64_t begin, int64_t end) {
    return squares_loop(x, begin, end);
}

template <typename T>
void scale(T *x, T factor, int64_t begin, int64_t end) {
    scale_loop(x, factor, begin, end);
}

template void adamw<float>(const AdamWTask<float> &, int64_t, int64_t);
template void adamw<double>(const AdamWTask<double> &, int64_t, int64_t);
template double sum_of_squares<float>(const float *, int64_t, int64_t);
template double sum_of_squares<double>(const double *, int64_t, int64_t);
template void scale<float>(float *, float, int64_t, int64_t);
template void scale<double>(double *, double, int64_t, int64_t);

} // namespace cdrmix::kernels
