// Sparse upcycling: a dense RWKV-7 model's FFNs become MoE layers of copies;
// with noise 0 the upcycled model's logits equal the dense model's (float64),
// shared experts included; noise makes them differ; a model that is already MoE
// is refused.
#include "interop/upcycle.hpp"
#include "model/model.hpp"
#include "test_util.hpp"
#include "train/checkpoint.hpp"

#include <cdrmix/tokenizer.hpp>

#include <cstdio>

using cdrmix::Json;
using cdrmix::test::error_of;
using cdrmix::test::max_abs_diff;
namespace fs = std::filesystem;

namespace {

constexpr int64_t V = 30;

std::shared_ptr<cdrmix::Model> dense_model() {
    Json spec = cdrmix::test::tiny_model_spec(V);
    spec["num_layers"] = 3;
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    cdrmix::test::perturb(*m, 0.3, 9);
    return m;
}

torch::Tensor logits64(cdrmix::Model &m) {
    m.to(torch::kFloat64);
    m.eval();
    torch::manual_seed(3);
    const torch::Tensor tokens = torch::randint(V, {2, 11}, torch::kLong);
    torch::NoGradGuard no_grad;
    cdrmix::ForwardContext ctx;
    return m.forward(tokens, nullptr, ctx);
}

cdrmix::UpcycleOptions options(const fs::path &from, const fs::path &out, int64_t every, int64_t shared, double noise) {
    cdrmix::UpcycleOptions o;
    o.checkpoint = from.string();
    o.out = out.string();
    o.experts = 4;
    o.top_k = 2;
    o.moe_every = every;
    o.shared_experts = shared;
    o.noise = noise;
    return o;
}

} // namespace

TEST(Upcycle, IdenticalExpertsWithoutNoiseGiveTheDenseLogits) {
    const auto dir = cdrmix::test::scratch_dir("upcycle");
    auto dense = dense_model();
    fs::create_directories(dir / "dense");
    cdrmix::write_model_files((dir / "dense").string(), *dense, *cdrmix::make_id_tokenizer(V));
    const torch::Tensor expected = logits64(*dense);

    struct Case {
        const char *name;
        int64_t every, shared;
    };
    for (const Case &c : {Case{"every layer", 1, 0}, Case{"every 2nd layer, 1 shared expert", 2, 1}}) {
        const std::string out = cdrmix::upcycle(options(dir / "dense", dir / c.name, c.every, c.shared, 0.0),
                                                cdrmix::Registry::global());
        auto moe = cdrmix::load_checkpoint(out, cdrmix::Registry::global()).model;
        EXPECT_GT(moe->num_parameters(), dense->num_parameters());
        const double diff = max_abs_diff(logits64(*moe), expected);
        std::printf("[ upcycle ] %s: max |logit difference| to the dense model = %.3g (float64)\n", c.name, diff);
        EXPECT_LT(diff, 1e-12) << c.name;
    }
    auto noisy = cdrmix::load_checkpoint(
                     cdrmix::upcycle(options(dir / "dense", dir / "noisy", 1, 0, 0.05), cdrmix::Registry::global()),
                     cdrmix::Registry::global())
                     .model;
    EXPECT_GT(max_abs_diff(logits64(*noisy), expected), 1e-4);
}

TEST(Upcycle, RefusesAModelThatIsAlreadyMoE) {
    const auto dir = cdrmix::test::scratch_dir("upcycle_moe");
    Json spec = cdrmix::test::tiny_model_spec(V);
    spec["moe_every"] = 2;
    cdrmix::Model moe(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    fs::create_directories(dir / "moe");
    cdrmix::write_model_files((dir / "moe").string(), moe, *cdrmix::make_id_tokenizer(V));
    const std::string m = error_of(
        [&] { cdrmix::upcycle(options(dir / "moe", dir / "out", 1, 0, 0.0), cdrmix::Registry::global()); });
    EXPECT_NE(m.find("the model already has MoE layers"), std::string::npos) << m;
    EXPECT_FALSE(fs::exists(dir / "out"));
}
