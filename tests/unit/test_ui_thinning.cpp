// Drawing-only thinning: bounded output, every column's extremes kept, spikes survive.
#include <data/thinning.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using cdrmix::ui::Point;
using cdrmix::ui::thin_minmax;

namespace {
struct Curve {
    std::vector<double> x, y;
};
Curve noisy(size_t n) {
    Curve c;
    for (size_t i = 0; i < n; ++i) {
        c.x.push_back(static_cast<double>(i));
        c.y.push_back(std::sin(0.001 * static_cast<double>(i)) + 0.1 * std::sin(1.7 * static_cast<double>(i)));
    }
    return c;
}
} // namespace

TEST(UiThinning, HundredThousandPointsBecomeAtMostFourPerColumn) {
    Curve c = noisy(100000);
    const auto pts = thin_minmax(c.x.data(), c.y.data(), c.x.size(), 0, 99999, 500);
    EXPECT_LE(pts.size(), 4u * 501);
    EXPECT_GE(pts.size(), 500u);
    EXPECT_TRUE(std::is_sorted(pts.begin(), pts.end(), [](const Point &a, const Point &b) { return a.x < b.x; }));
}

TEST(UiThinning, EveryColumnKeepsItsMinimumAndMaximum) {
    Curve c = noisy(20000);
    const int columns = 100;
    const auto pts = thin_minmax(c.x.data(), c.y.data(), c.x.size(), 0, 19999, columns);
    const double width = 19999.0 / columns;
    for (int col = 0; col < columns; ++col) {
        double lo = INFINITY, hi = -INFINITY, tlo = INFINITY, thi = -INFINITY;
        for (size_t i = 0; i < c.x.size(); ++i)
            if (std::min<long>(columns, static_cast<long>(std::floor(c.x[i] / width))) == col)
                lo = std::min(lo, c.y[i]), hi = std::max(hi, c.y[i]);
        for (const auto &p : pts)
            if (std::min<long>(columns, static_cast<long>(std::floor(p.x / width))) == col)
                tlo = std::min(tlo, p.y), thi = std::max(thi, p.y);
        EXPECT_EQ(lo, tlo) << "column " << col;
        EXPECT_EQ(hi, thi) << "column " << col;
    }
}

TEST(UiThinning, ASingleSpikeSurvives) {
    std::vector<double> x(100000), y(100000, 1.0);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i);
    y[71234] = 50.0;
    const auto pts = thin_minmax(x.data(), y.data(), x.size(), 0, 99999, 300);
    const auto spike = std::find_if(pts.begin(), pts.end(), [](const Point &p) { return p.y == 50.0; });
    ASSERT_NE(spike, pts.end());
    EXPECT_EQ(spike->x, 71234.0);
}

TEST(UiThinning, ShortCurvesAreUnchangedAndTheViewIsClippedWithOneNeighbourEachSide) {
    std::vector<double> x = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, y = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    auto all = thin_minmax(x.data(), y.data(), x.size(), 0, 9, 1000);
    ASSERT_EQ(all.size(), x.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(all[i].y, y[i]);
    auto part = thin_minmax(x.data(), y.data(), x.size(), 3.5, 6.5, 1000);
    ASSERT_EQ(part.size(), 5u); // 4, 5, 6 inside, 3 and 7 as neighbours
    EXPECT_EQ(part.front().x, 3);
    EXPECT_EQ(part.back().x, 7);
}

TEST(UiThinning, NonFiniteValuesAreSkipped) {
    std::vector<double> x = {0, 1, 2}, y = {1, NAN, 3};
    const auto pts = thin_minmax(x.data(), y.data(), 3, 0, 2, 100);
    ASSERT_EQ(pts.size(), 2u);
    EXPECT_TRUE(thin_minmax(x.data(), y.data(), 0, 0, 2, 100).empty());
}
