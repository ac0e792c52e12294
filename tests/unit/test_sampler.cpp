// The sampler's Decoder: the prompt once, then one token at a time with the
// state carried, gives the same logits as the whole sequence in one pass; an
// RWKV-7 model's carried state does not grow with the context; the model's
// train/eval mode is restored.
#include "model/sampler.hpp"
#include "test_util.hpp"

using cdrmix::Json;
using cdrmix::test::max_abs_diff;
using torch::Tensor;

namespace {

std::shared_ptr<cdrmix::Model> tiny_model(const Json &mixer) {
    const Json spec = {{"vocab_size", 11},
                       {"hidden_size", 16},
                       {"num_layers", 2},
                       {"mixer", mixer},
                       {"ffn", {{"type", "rwkv_channel_mix"}}}};
    auto m = std::make_shared<cdrmix::Model>(cdrmix::ModelSpec::from_json(spec, "test"), cdrmix::Registry::global());
    m->to(torch::kFloat64);
    cdrmix::test::perturb(*m, 0.05, 5);
    return m;
}

Json rwkv7() { return {{"type", "rwkv7_time_mix"}, {"head_size", 8}}; }

int64_t state_numel(const cdrmix::ModelState &s) {
    int64_t n = 0;
    for (const auto *blocks : {&s.mixer, &s.ffn})
        for (const auto &block : *blocks)
            for (const auto &t : block) n += t.numel();
    return n;
}

std::vector<int64_t> ids_of(const Tensor &t) { return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()}; }

} // namespace

TEST(Decoder, StepsGiveTheWholeSequencesLogits) {
    for (const Json &mixer : {rwkv7(), Json{{"type", "attention"}, {"num_heads", 2}}}) {
        auto m = tiny_model(mixer);
        const Tensor tokens = torch::randint(0, 11, {9}, torch::kInt64);
        Tensor whole;
        {
            torch::NoGradGuard no_grad;
            m->eval();
            cdrmix::ForwardContext ctx;
            whole = m->forward(tokens.unsqueeze(0), nullptr, ctx).squeeze(0);
        }
        cdrmix::Decoder decoder(*m);
        EXPECT_LT(max_abs_diff(decoder.prefill(ids_of(tokens.slice(0, 0, 4))), whole[3]), 1e-9) << mixer.dump();
        for (int64_t t = 4; t < 9; ++t)
            EXPECT_LT(max_abs_diff(decoder.step(tokens[t].item<int64_t>()), whole[t]), 1e-9) << mixer.dump() << " at " << t;
    }
}

TEST(Decoder, Rwkv7StateDoesNotGrowWithTheContext) {
    auto m = tiny_model(rwkv7());
    cdrmix::Decoder short_ctx(*m), long_ctx(*m);
    short_ctx.prefill(std::vector<int64_t>(4, 1));
    long_ctx.prefill(std::vector<int64_t>(300, 1));
    for (int i = 0; i < 3; ++i) long_ctx.step(2);
    EXPECT_GT(state_numel(short_ctx.state()), 0);
    EXPECT_EQ(state_numel(short_ctx.state()), state_numel(long_ctx.state()));
}

TEST(Decoder, RestoresTheModelsMode) {
    auto m = tiny_model(rwkv7());
    m->train();
    {
        cdrmix::Decoder decoder(*m);
        EXPECT_FALSE(m->is_training());
        decoder.prefill({1, 2});
    }
    EXPECT_TRUE(m->is_training());
}
