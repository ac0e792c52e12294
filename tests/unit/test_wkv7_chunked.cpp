// The chunked matrix form of the WKV-7 op (sdk/ops/wkv7_chunked.cpp) against the
// per-token reference: forward, final state and every gradient (including the
// initial state's) in float32 and float64, at head sizes 64, 48 and 32 and a
// length that is not a multiple of the chunk; finite differences; chunks whose
// decay is too strong for the chunked form (run by the recurrent kernels); and
// either form's backward after the other's forward.
#include "test_util.hpp"

#include "sdk/ops/wkv7_chunked.hpp"

#include <cdrmix/ops.hpp>

using torch::Tensor;
namespace ch = cdrmix::ops::cpu::chunked;

namespace {

// Sets the op's form for one scope.
class FormScope {
public:
    explicit FormScope(ch::Wkv7Form form) : saved_(ch::wkv7_form()) { ch::set_wkv7_form(form); }
    ~FormScope() { ch::set_wkv7_form(saved_); }

private:
    ch::Wkv7Form saved_;
};

// r, w, k, v, a, b, s0 in float64, shaped like the time-mix block makes them.
std::vector<Tensor> make_inputs(int64_t B, int64_t T, int64_t H, int64_t N, uint64_t seed) {
    torch::manual_seed(seed);
    auto o = torch::TensorOptions().dtype(torch::kFloat64);
    auto rn = [&] { return torch::randn({B, T, H, N}, o); };
    Tensor kappa = torch::nn::functional::normalize(rn(), torch::nn::functional::NormalizeFuncOptions().dim(-1));
    return {rn() * 0.5, torch::exp(-std::exp(-0.5) * torch::sigmoid(rn())), rn() * 0.5, rn(), -kappa,
            kappa * torch::sigmoid(rn()), torch::randn({B, H, N, N}, o) * 0.1};
}

// y, final state, then the gradients of r, w, k, v, a, b, s0 for the loss
// sum(y * gy) + sum(s * gs), with the inputs converted to dtype (the state to
// float32 or float64 as the op takes it).
std::vector<Tensor> run(bool reference, const std::vector<Tensor> &x64, torch::ScalarType dtype, uint64_t seed) {
    std::vector<Tensor> x;
    for (const auto &t : x64) x.push_back(t.to(dtype).detach().requires_grad_(true));
    auto [y, s] = reference ? cdrmix::ops::wkv7_reference(x[0], x[1], x[2], x[3], x[4], x[5], x[6])
                            : cdrmix::ops::wkv7(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
    torch::manual_seed(seed);
    Tensor gy = torch::randn(y.sizes(), torch::kFloat64), gs = torch::randn(s.sizes(), torch::kFloat64);
    ((y * gy.to(y.scalar_type())).sum() + (s * gs.to(s.scalar_type())).sum()).backward();
    std::vector<Tensor> out{y.detach(), s.detach()};
    for (const auto &t : x) out.push_back(t.grad());
    return out;
}

// Largest difference relative to the reference's largest magnitude, per output.
void expect_close(const std::vector<Tensor> &got, const std::vector<Tensor> &ref, double tol, const std::string &what) {
    const char *names[] = {"y", "final state", "dr", "dw", "dk", "dv", "da", "db", "ds0"};
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < got.size(); ++i) {
        const double scale = std::max(1e-12, ref[i].abs().max().item<double>());
        EXPECT_LT(cdrmix::test::max_abs_diff(got[i], ref[i]) / scale, tol) << what << ": " << names[i];
    }
}

std::string name_of(int64_t N, torch::ScalarType dt) {
    return "N=" + std::to_string(N) + (dt == torch::kFloat64 ? " f64" : " f32");
}

// The kernel-set tests' tolerances: float64 to rounding, float32 as the recurrent kernels.
double tolerance(torch::ScalarType dt) { return dt == torch::kFloat64 ? 1e-10 : 2e-4; }

} // namespace

TEST(WKV7Chunked, MatchesReferenceAtEveryHeadSizeAndPrecision) {
    FormScope chunked(ch::Wkv7Form::chunked);
    for (int64_t N : {64, 48, 32})
        for (auto dt : {torch::kFloat32, torch::kFloat64}) {
            // T = 37: two whole chunks of 16 and a last one of 5.
            auto x = make_inputs(2, 37, 2, N, uint64_t(N));
            expect_close(run(false, x, dt, 1), run(true, x, torch::kFloat64, 1), tolerance(dt), name_of(N, dt));
        }
}

TEST(WKV7Chunked, FiniteDifferences) {
    FormScope chunked(ch::Wkv7Form::chunked);
    // T = 21: a chunk of 16 and one of 5, both in matrix form.
    auto x = make_inputs(1, 21, 1, 4, 11);
    for (auto &t : x) t.requires_grad_(true);
    torch::manual_seed(12);
    Tensor gy = torch::randn({1, 21, 1, 4}, torch::kFloat64);
    auto loss = [&] {
        auto [y, s] = cdrmix::ops::wkv7(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
        return (y * gy).sum() + s.pow(2).sum();
    };
    for (auto &t : x) cdrmix::test::expect_gradient_matches(t, loss, 24, 1e-6, 1e-6);
}

TEST(WKV7Chunked, StrongDecayChunksRunRecurrently) {
    // Decays of 1e-45 over a few steps leave float32 (and float64's chunked
    // range): those chunks must still agree, through the recurrent kernels.
    FormScope chunked(ch::Wkv7Form::chunked);
    auto x = make_inputs(1, 37, 2, 32, 13);
    x[1].slice(1, 18, 22).select(2, 1).fill_(1e-45);
    for (auto dt : {torch::kFloat32, torch::kFloat64})
        expect_close(run(false, x, dt, 2), run(true, x, torch::kFloat64, 2), tolerance(dt), name_of(32, dt));
}

TEST(WKV7Chunked, EitherFormsBackwardFollowsEitherForward) {
    // Both forms save the same states every 16 steps, so the form may change
    // between a forward pass and its backward pass.
    auto x = make_inputs(2, 37, 2, 48, 14);
    const auto ref = run(true, x, torch::kFloat64, 3);
    for (auto [fwd, bwd] : {std::pair{ch::Wkv7Form::chunked, ch::Wkv7Form::recurrent},
                            std::pair{ch::Wkv7Form::recurrent, ch::Wkv7Form::chunked}}) {
        FormScope scope(fwd);
        std::vector<Tensor> xs;
        for (const auto &t : x) xs.push_back(t.detach().requires_grad_(true));
        auto [y, s] = cdrmix::ops::wkv7(xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], xs[6]);
        torch::manual_seed(3);
        Tensor gy = torch::randn(y.sizes(), torch::kFloat64), gs = torch::randn(s.sizes(), torch::kFloat64);
        Tensor loss = (y * gy).sum() + (s * gs).sum();
        ch::set_wkv7_form(bwd);
        loss.backward();
        std::vector<Tensor> got{y.detach(), s.detach()};
        for (const auto &t : xs) got.push_back(t.grad());
        expect_close(got, ref, tolerance(torch::kFloat64),
                     std::string(ch::wkv7_form_name(fwd)) + " then " + ch::wkv7_form_name(bwd));
    }
}
