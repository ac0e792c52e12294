// TensorBoard's classic smoothing (data_transformer.ts::classicSmoothing), checked by hand-computed values.
#include <data/smoothing.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using cdrmix::ui::ema_smooth;

TEST(UiSmoothing, DebiasedEmaMatchesTensorBoardFormula) {
    const std::vector<double> y = {1.0, 3.0, 2.0};
    const double w = 0.6;
    // last_n = w last_{n-1} + (1-w) y_n from 0, divided by 1 - w^n.
    const double l1 = 0.4 * 1.0, l2 = 0.6 * l1 + 0.4 * 3.0, l3 = 0.6 * l2 + 0.4 * 2.0;
    const auto s = ema_smooth(y, w);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_DOUBLE_EQ(s[0], l1 / (1 - 0.6));
    EXPECT_DOUBLE_EQ(s[1], l2 / (1 - 0.36));
    EXPECT_DOUBLE_EQ(s[2], l3 / (1 - 0.216));
    EXPECT_DOUBLE_EQ(s[0], 1.0); // debiasing: the first point is not pulled toward 0
}

TEST(UiSmoothing, WeightZeroIsIdentityAndOneHoldsTheFirstValue) {
    const std::vector<double> y = {5, 1, 4, 2};
    EXPECT_EQ(ema_smooth(y, 0.0), y);
    for (double v : ema_smooth(y, 1.0)) EXPECT_DOUBLE_EQ(v, 0.0); // TB: w = 1 means no debias, EMA stays at 0
    EXPECT_EQ(ema_smooth(y, std::nan("")), y);                    // NaN weight counts as 0
    EXPECT_EQ(ema_smooth(y, -3.0), y);                            // clamped
}

TEST(UiSmoothing, NonFiniteValuesPassThroughWithoutAdvancingTheAverage) {
    const double inf = std::numeric_limits<double>::infinity();
    const auto s = ema_smooth({2.0, inf, 4.0}, 0.5);
    EXPECT_DOUBLE_EQ(s[0], 2.0);
    EXPECT_EQ(s[1], inf);
    // Second finite point: n = 2, last = 0.5*1 + 0.5*4 = 2.5, debias 0.75.
    EXPECT_DOUBLE_EQ(s[2], 2.5 / 0.75);
}

TEST(UiSmoothing, ConstantSeriesIsReturnedUnchanged) {
    const std::vector<double> y(50, 0.1);
    EXPECT_EQ(ema_smooth(y, 0.9), y);
    EXPECT_TRUE(ema_smooth({}, 0.6).empty());
}
