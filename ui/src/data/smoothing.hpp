// Smoothing for scalar curves: TensorBoard's "classic" EMA with debiasing, so
// the numbers match what researchers see in TensorBoard.
#pragma once

#include <vector>

namespace cdrmix::ui {

// weight in [0,1] (clamped; NaN counts as 0). Non-finite values pass through
// unchanged and do not advance the EMA. A constant series is returned as is.
std::vector<double> ema_smooth(const std::vector<double> &values, double weight);

} // namespace cdrmix::ui
