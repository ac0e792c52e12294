// Tokenizers, learning-rate schedule, safetensors, progress formatting.
#include "metrics/progress.hpp"
#include "test_util.hpp"
#include "train/safetensors.hpp"
#include "train/schedule.hpp"

#include <cdrmix/backend.hpp>
#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>
#include <cdrmix/tokenizer.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

TEST(Tokenizer, ByteRoundTrip) {
    auto t = cdrmix::make_byte_tokenizer();
    const std::string s = "héllo\n\x01";
    EXPECT_EQ(t->decode(t->encode(s)), s);
    EXPECT_EQ(t->vocab_size(), 256);
}

TEST(Tokenizer, CharVocabularyAndJsonRoundTrip) {
    auto t = cdrmix::make_char_tokenizer("abcaé€");
    EXPECT_EQ(t->vocab_size(), 5); // a b c é €: one token per UTF-8 character
    const auto ids = t->encode("€ba");
    EXPECT_EQ(t->decode(ids), "€ba");
    auto u = cdrmix::tokenizer_from_json(t->to_json());
    EXPECT_EQ(u->encode("é€"), t->encode("é€"));
    EXPECT_THROW(t->encode("z"), cdrmix::Error);
}

TEST(Schedule, WarmupThenCosine) {
    cdrmix::LrSchedule s;
    s.lr = 1.0;
    s.min_lr = 0.1;
    s.warmup_steps = 10;
    s.total_steps = 110;
    EXPECT_DOUBLE_EQ(s.at(0), 0.1);
    EXPECT_DOUBLE_EQ(s.at(9), 1.0);
    EXPECT_DOUBLE_EQ(s.at(10), 1.0);
    EXPECT_NEAR(s.at(60), 0.55, 1e-12); // halfway: mean of lr and min_lr
    EXPECT_NEAR(s.at(110), 0.1, 1e-12);
    s.kind = "linear";
    EXPECT_NEAR(s.at(60), 0.55, 1e-12);
    s.kind = "constant";
    EXPECT_DOUBLE_EQ(s.at(100), 1.0);
    s.kind = "bogus";
    EXPECT_THROW(s.at(50), cdrmix::Error);
}

TEST(Safetensors, RoundTripAndTruncation) {
    const auto path = (std::filesystem::temp_directory_path() / "cdrmix_st_test.safetensors").string();
    torch::Tensor a = torch::randn({3, 4}), b = torch::arange(5, torch::kInt64), c = torch::randn({2}, torch::kFloat64);
    cdrmix::save_safetensors(path, {{"a", a}, {"b", b}, {"c", c}}, {{"format", "pt"}});
    // Header: 8-byte little-endian length, JSON, data aligned to 8 bytes.
    std::ifstream in(path, std::ios::binary);
    uint64_t n = 0;
    in.read(reinterpret_cast<char *>(&n), 8);
    EXPECT_EQ(n % 8, 0u);
    auto loaded = cdrmix::load_safetensors(path);
    EXPECT_TRUE(torch::equal(loaded.at("a"), a));
    EXPECT_TRUE(torch::equal(loaded.at("b"), b));
    EXPECT_TRUE(torch::equal(loaded.at("c"), c));
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
    EXPECT_THROW(cdrmix::load_safetensors(path), cdrmix::Error);
}

// Hostile headers: each is one line naming the file and the tensor, and
// nothing is allocated or read beyond the file (offsets near 2^64 once
// wrapped around the bounds check and read outside the buffer).
TEST(Safetensors, HostileHeadersAreOneLineErrors) {
    const auto path = (std::filesystem::temp_directory_path() / "cdrmix_st_hostile.safetensors").string();
    auto write = [&](const std::string &header, size_t data_bytes) {
        std::string blob(8, '\0');
        for (int i = 0; i < 8; ++i) blob[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
        blob += header;
        blob.append(data_bytes, '\x01');
        std::ofstream(path, std::ios::binary) << blob;
    };
    const struct {
        std::string header;
        const char *says;
    } cases[] = {
        {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,8]}})", "lie outside"},
        {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", "lie outside"},
        {R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", "larger than any file"},
        {R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "negative or non-integer"},
        {R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "needs 12"},
        {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", "two non-negative integers"},
        {R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", "shape is not a list"},
        {R"({"w":[1,2]})", "needs dtype, shape and data_offsets"},
        {R"([1,2,3])", "not a JSON object"},
        {R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", "unsupported safetensors dtype 'Q4'"},
    };
    for (const auto &c : cases) {
        write(c.header, 8);
        const std::string error = cdrmix::test::error_of([&] { cdrmix::load_safetensors(path); });
        EXPECT_NE(error.find(path), std::string::npos) << c.header << " -> " << error;
        EXPECT_NE(error.find(c.says), std::string::npos) << c.header << " -> " << error;
        EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    }
    write(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
    EXPECT_EQ(cdrmix::load_safetensors(path).at("w").numel(), 2);
}

TEST(Progress, DurationFormat) {
    EXPECT_EQ(cdrmix::format_duration(5), "5s");
    EXPECT_EQ(cdrmix::format_duration(185), "3m05s");
    EXPECT_EQ(cdrmix::format_duration(3720), "1h02m");
}

// Backends list the cdrmix:: ops their device has kernels for, from the dispatcher.
TEST(Backends, CpuListsTheWkvKernels) {
    auto cpu = cdrmix::Registry::global().create_backend(cdrmix::Config(cdrmix::Json{{"type", "cpu"}}, "test", ""));
    const auto kernels = cpu->kernels();
    for (const char *op : {"cdrmix::wkv7_forward", "cdrmix::wkv7_backward", "cdrmix::wkv6_forward", "cdrmix::wkv6_backward"})
        EXPECT_NE(std::find(kernels.begin(), kernels.end(), op), kernels.end()) << op;
}
