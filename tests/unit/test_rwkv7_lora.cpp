// RWKV-7's default LoRA ranks follow RWKV-LM's formula exactly, Python's
// round-half-to-even included.
#include "test_util.hpp"

#include <cdrmix/rwkv7_lora.hpp>

TEST(Rwkv7LoraRanks, MatchRwkvLmIncludingHalves) {
    // Python: max(32, int(round(f * (C**0.5) / 32) * 32)) for f = 2.5 (decay, a), 1.7 (value), 5 (gate).
    // At C = 256 the gate is round(2.5) = 2 (not 3), at 1024 decay and a are round(2.5) = 2, at 6400 the
    // gate is round(12.5) = 12: rounding halves up gives 96, 96 and 416 instead.
    struct Row {
        int64_t C, decay, value, gate;
    };
    for (const Row &r : {Row{256, 32, 32, 64}, Row{1024, 64, 64, 160}, Row{6400, 192, 128, 384},
                         Row{768, 64, 32, 128}, Row{2048, 128, 64, 224}, Row{4096, 160, 96, 320}}) {
        EXPECT_EQ(cdrmix::rwkv7_lora_rank(2.5, r.C), r.decay) << "C=" << r.C;
        EXPECT_EQ(cdrmix::rwkv7_lora_rank(1.7, r.C), r.value) << "C=" << r.C;
        EXPECT_EQ(cdrmix::rwkv7_lora_rank(5.0, r.C), r.gate) << "C=" << r.C;
    }
}

TEST(Rwkv7LoraRanks, TheBlockUsesThemByDefault) {
    cdrmix::BlockContext ctx;
    ctx.hidden_size = 256;
    ctx.layer = 1;
    ctx.num_layers = 2;
    auto block = cdrmix::test::make_block({{"type", "rwkv7_time_mix"}, {"head_size", 64}}, ctx);
    auto params = block->named_parameters();
    EXPECT_EQ(params["w1"].sizes(), (std::vector<int64_t>{256, 32}));
    EXPECT_EQ(params["a1"].sizes(), (std::vector<int64_t>{256, 32}));
    EXPECT_EQ(params["v1"].sizes(), (std::vector<int64_t>{256, 32}));
    EXPECT_EQ(params["g1"].sizes(), (std::vector<int64_t>{256, 64}));
}
