// The fused AdamW against LibTorch's AdamW: the same parameters, gradients and
// learning rates give the same weights and moments step after step (float32 to
// 1e-6 of each tensor's scale, float64 to 1e-12), in two groups with and without weight decay and with
// a parameter that has no gradient at first; its state saved by one optimiser
// continues in the other; the one-pass gradient norm and clipping match
// torch::nn::utils::clip_grad_norm_.
#include "train/fused_adamw.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

using torch::Tensor;

namespace {

// Parameters of a few shapes, one of them larger than a parallel chunk.
std::vector<Tensor> make_params(torch::Dtype dtype) {
    torch::manual_seed(11);
    std::vector<Tensor> params;
    for (auto shape : std::vector<std::vector<int64_t>>{{300, 200}, {64}, {7, 5}, {1, 1, 33}})
        params.push_back(torch::randn(shape, torch::dtype(dtype)).requires_grad_());
    return params;
}

std::vector<Tensor> clones(const std::vector<Tensor> &params) {
    std::vector<Tensor> out;
    for (const auto &p : params) out.push_back(p.detach().clone().requires_grad_());
    return out;
}

template <typename Opt>
std::unique_ptr<Opt> make_opt(const std::vector<Tensor> &params) {
    auto base = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.99}).eps(1e-8);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<Tensor>{params[0], params[2]},
                        std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.1)));
    groups.emplace_back(std::vector<Tensor>{params[1], params[3]},
                        std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
    return std::make_unique<Opt>(std::move(groups), base);
}

// Same gradients (seeded by step) and learning rate for every parameter set;
// parameter 3 gets no gradient at the first step.
void set_grads_and_lr(torch::optim::Optimizer &opt, std::vector<Tensor> &params, int step) {
    torch::manual_seed(100 + step);
    for (size_t i = 0; i < params.size(); ++i) {
        if (step == 0 && i == 3) continue;
        params[i].mutable_grad() = torch::randn_like(params[i]) * (0.1 * double(i + 1));
    }
    for (auto &g : opt.param_groups())
        static_cast<torch::optim::AdamWOptions &>(g.options()).lr(1e-2 / double(step + 1));
}

// Largest difference relative to the tensor's largest magnitude (rounding
// differences of elements near zero are judged against the tensor's scale).
double max_rel_diff(const Tensor &a, const Tensor &b) {
    return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

void expect_same_state(torch::optim::Optimizer &a, torch::optim::Optimizer &b, const std::vector<Tensor> &pa,
                       const std::vector<Tensor> &pb, double tol) {
    for (size_t i = 0; i < pa.size(); ++i) {
        EXPECT_LT(max_rel_diff(pa[i].detach(), pb[i].detach()), tol) << "parameter " << i;
        ASSERT_NE(cdrmix::param_state(a, pa[i]), nullptr) << "parameter " << i;
        ASSERT_NE(cdrmix::param_state(b, pb[i]), nullptr) << "parameter " << i;
        const auto &sa = static_cast<torch::optim::AdamWParamState &>(*cdrmix::param_state(a, pa[i]));
        const auto &sb = static_cast<torch::optim::AdamWParamState &>(*cdrmix::param_state(b, pb[i]));
        EXPECT_EQ(sa.step(), sb.step()) << "parameter " << i;
        EXPECT_LT(max_rel_diff(sa.exp_avg(), sb.exp_avg()), tol) << "parameter " << i;
        EXPECT_LT(max_rel_diff(sa.exp_avg_sq(), sb.exp_avg_sq()), tol) << "parameter " << i;
    }
}

void matches_libtorch(torch::Dtype dtype, double tol) {
    std::vector<Tensor> ref_params = make_params(dtype), fused_params = clones(ref_params);
    auto ref = make_opt<torch::optim::AdamW>(ref_params);
    auto fused = make_opt<cdrmix::FusedAdamW>(fused_params);
    const Tensor start = fused_params[0].detach().clone();
    for (int step = 0; step < 6; ++step) {
        set_grads_and_lr(*ref, ref_params, step);
        set_grads_and_lr(*fused, fused_params, step);
        ref->step();
        fused->step();
    }
    expect_same_state(*ref, *fused, ref_params, fused_params, tol);
    EXPECT_GT((fused_params[0].detach() - start).abs().max().item<double>(), 1e-3); // the steps moved the weights
}

} // namespace

TEST(FusedAdamW, MatchesLibTorchAdamWFloat32) { matches_libtorch(torch::kFloat32, 1e-6); }

TEST(FusedAdamW, MatchesLibTorchAdamWFloat64) { matches_libtorch(torch::kFloat64, 1e-12); }

// State saved by the fused optimiser loads into LibTorch's and continues alike (and the other way round).
TEST(FusedAdamW, StateMovesBetweenTheTwoOptimisers) {
    std::vector<Tensor> a_params = make_params(torch::kFloat32);
    auto a = make_opt<cdrmix::FusedAdamW>(a_params);
    for (int step = 0; step < 3; ++step) {
        set_grads_and_lr(*a, a_params, step);
        a->step();
    }
    std::stringstream saved;
    torch::save(*a, saved);

    std::vector<Tensor> b_params = clones(a_params), c_params = clones(a_params);
    auto b = make_opt<torch::optim::AdamW>(b_params);
    torch::load(*b, saved);
    saved.seekg(0);
    auto c = make_opt<cdrmix::FusedAdamW>(c_params);
    torch::load(*c, saved);
    for (int step = 3; step < 6; ++step) {
        set_grads_and_lr(*b, b_params, step);
        set_grads_and_lr(*c, c_params, step);
        b->step();
        c->step();
    }
    expect_same_state(*b, *c, b_params, c_params, 1e-6);
}

TEST(FusedAdamW, GradientNormAndClippingMatchLibTorch) {
    for (double max_norm : {0.5, 1e6}) {
        std::vector<Tensor> ref = make_params(torch::kFloat32), ours = clones(ref);
        for (size_t i = 0; i < ref.size(); ++i) {
            ref[i].mutable_grad() = torch::randn_like(ref[i]);
            ours[i].mutable_grad() = ref[i].grad().clone();
        }
        const double expected = torch::nn::utils::clip_grad_norm_(ref, max_norm);
        EXPECT_NEAR(cdrmix::clip_grad_norm(ours, max_norm), expected, 1e-5 * expected);
        for (size_t i = 0; i < ref.size(); ++i)
            EXPECT_LT(max_rel_diff(ours[i].grad(), ref[i].grad()), 1e-5) << "max_norm " << max_norm << " parameter " << i;
    }
}

TEST(FusedAdamW, RefusesAmsgrad) {
    std::vector<Tensor> params = make_params(torch::kFloat32);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(params);
    EXPECT_THROW(cdrmix::FusedAdamW(std::move(groups), torch::optim::AdamWOptions(1e-3).amsgrad(true)), std::exception);
}
