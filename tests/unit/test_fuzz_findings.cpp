// Inputs the fuzz targets (tests/fuzz/, scripts/fuzz.sh) found to crash a
// parser, each checked here as the one-line error or the result it now gives.
// The fuzz run replays the same inputs (tests/fuzz/regressions/) under
// AddressSanitizer and UBSan; these tests keep the behaviour in the ordinary build.
#include "core/yaml_config.hpp"
#include "core/zip_bounds.hpp"
#include "interop/import_torch_save.hpp"
#include "test_util.hpp"
#include "train/safetensors.hpp"

#include <cdrmix/jsonl.hpp>
#include <cdrmix/tokenizer.hpp>

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <regex>

using cdrmix::test::error_of;

// yaml-cpp passes invalid UTF-8 through; the JSON made from it threw
// nlohmann's type_error.316 later, when the config was written or printed.
TEST(FuzzFindings, YamlWithInvalidUtf8IsOneLineError) {
    const auto dir = cdrmix::test::scratch_dir("fuzz_yaml_utf8");
    const std::string key = (dir / "key.yaml").string(), value = (dir / "value.yaml").string();
    std::ofstream(key, std::ios::binary) << "\x0f\xad-:";
    std::ofstream(value, std::ios::binary) << "a: 1\nb: caf\xe9\n"; // Latin-1
    EXPECT_EQ(error_of([&] { cdrmix::load_yaml_file(key); }), key + ":1: not valid UTF-8 text");
    EXPECT_EQ(error_of([&] { cdrmix::load_yaml_file(value); }), value + ":2: not valid UTF-8 text");
    const std::string good = (dir / "good.yaml").string();
    std::ofstream(good, std::ios::binary) << "name: \"caf\\u00e9\"\n\xc3\xa9t\xc3\xa9: 1\n";
    EXPECT_EQ(cdrmix::load_yaml_file(good).dump(), "{\"name\":\"caf\xc3\xa9\",\"\xc3\xa9t\xc3\xa9\":1}");
}

// An alias used inside its own anchor is a cycle: the conversion to JSON
// recursed until the stack overflowed.
TEST(FuzzFindings, YamlAliasCycleIsOneLineError) {
    const auto path = (cdrmix::test::scratch_dir("fuzz_yaml_cycle") / "c.yaml").string();
    std::ofstream(path) << "base: &b\n  <<: *b\n  list: [*b, *b]\n";
    const std::string msg = error_of([&] { cdrmix::load_yaml_file(path); });
    EXPECT_EQ(msg.rfind(path + ":", 0), 0u) << msg;
    EXPECT_NE(msg.find("nests deeper than 100 levels"), std::string::npos) << msg;
}

// parse_decimal matched with std::regex, which recurses once per character: a
// config value of 100,000 digits crashed the program (found by reading the
// parser while fuzzing it). The hand-written matcher accepts what the regex did.
TEST(FuzzFindings, DecimalNumbersOfAnyLength) {
    const std::regex reference(R"([+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)");
    for (const std::string s : {"0", "-1", "+2.", ".5", "1.5e3", "1E-2", "7e+0", "", ".", "+", "-.", "1e", "1e+",
                                "e5", "0x10", "inf", "nan", " 1", "1 ", "1.2.3", "1e5.0", "--1", "١"}) {
        double d = 0;
        EXPECT_EQ(cdrmix::parse_decimal(s, d), std::regex_match(s, reference)) << "'" << s << "'";
    }
    const auto path = (cdrmix::test::scratch_dir("fuzz_yaml_long") / "n.yaml").string();
    std::ofstream(path) << "n: " << std::string(1000000, '9') << "\n";
    const cdrmix::Json j = cdrmix::load_yaml_file(path);
    EXPECT_TRUE(j["n"].is_number_float());
}

// A tokenizer JSON whose values have the wrong type threw nlohmann's
// type_error (uncaught by the loader), and a float vocab_size of 1e30 was
// converted to int64 (undefined behaviour).
TEST(FuzzFindings, TokenizerJsonOfWrongTypesIsOneLineError) {
    const auto dir = cdrmix::test::scratch_dir("fuzz_tokenizer_types");
    for (const std::string j : {R"({"kind": "char", "chars": 0e9})", R"({"kind": "ids", "vocab_size": 1e30})",
                                R"({"kind": "ids", "vocab_size": "9"})",
                                R"({"kind": "world", "vocab": "1 'a' 1", "vocab_size": 1e30})"}) {
        const std::string path = (dir / "t.json").string();
        std::ofstream(path) << j;
        const std::string msg = error_of([&] { cdrmix::load_tokenizer_file(path); });
        EXPECT_EQ(msg.rfind(path + ": tokenizer: ", 0), 0u) << j << " -> " << msg;
    }
}

// A number beyond a double made nlohmann throw out_of_range.406, which the
// JSONL reader did not catch: the run died with no file or line named.
TEST(FuzzFindings, JsonlNumberOverflowIsOneLineError) {
    const auto tokenizer = cdrmix::make_byte_tokenizer();
    std::vector<int64_t> out;
    EXPECT_EQ(error_of([&] { cdrmix::record_tokens("{\"tokens\": [2E444]}", *tokenizer, {}, "d.jsonl", 3, out); }),
              "d.jsonl:3: not valid JSON: number overflow parsing '2E444'");
    EXPECT_TRUE(out.empty());
}

// An empty tensor was copied with memcpy from a null pointer (undefined
// behaviour, reported by UBSan) even though it has no bytes.
TEST(FuzzFindings, SafetensorsEmptyTensorLoads) {
    const auto path = (cdrmix::test::scratch_dir("fuzz_st_empty") / "e.safetensors").string();
    cdrmix::save_safetensors(path, {{"e", torch::zeros({0, 5}, torch::kBFloat16)}, {"s", torch::tensor(7)}});
    const auto t = cdrmix::load_safetensors(path);
    EXPECT_EQ(t.at("e").sizes(), (std::vector<int64_t>{0, 5}));
    EXPECT_EQ(t.at("s").item<int64_t>(), 7);
}

// A .pth whose tensor record has a corrupt zip header: LibTorch's getRecord
// threw c10::Error, which the pickle reader did not catch.
TEST(FuzzFindings, TorchSaveCorruptRecordIsOneLineError) {
    const auto path = (cdrmix::test::scratch_dir("fuzz_pth_record") / "x.pth").string();
    // {"w": _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 2), 0, (2,), (1,), False, {})}
    using namespace std::string_literals; // the pickle holds NUL bytes
    const std::string pickle = "\x80\x02}X\x01\0\0\0wctorch._utils\n_rebuild_tensor_v2\n((X\x07\0\0\0storage"
                               "ctorch\nFloatStorage\nX\x01\0\0\0"s +
                               "0X\x03\0\0\0cpuK\x02tQK\0K\x02\x85K\x01\x85\x89}tRs."s;
    const float w[] = {1.5f, -2.0f};
    {
        caffe2::serialize::PyTorchStreamWriter zip(path);
        zip.writeRecord("data.pkl", pickle.data(), pickle.size());
        zip.writeRecord("data/0", w, sizeof w);
        zip.writeEndOfFile();
    }
    EXPECT_EQ(cdrmix::read_torch_save(path).at("w")[1].item<float>(), -2.0f);
    std::string bytes;
    {
        std::ifstream in(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    // The record's local header: the zip signature before its name.
    const size_t name = bytes.find("x/data/0");
    const size_t header = bytes.rfind("PK\x03\x04", name);
    ASSERT_NE(header, std::string::npos);
    bytes[header + 3] = '\x05';
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    const std::string msg = error_of([&] { cdrmix::read_torch_save(path); });
    EXPECT_EQ(msg, path + ": not a readable torch.save/LibTorch archive: record 'x/data/0' points at no local header");
}

// LibTorch's zip reader allocates what a record's directory entry claims: an
// archive of a few hundred bytes claiming 2 GiB made it ask for 2 GiB. The
// central directory is now checked first (core/zip_bounds.hpp).
TEST(FuzzFindings, ZipRecordClaimingMoreThanTheFileIsOneLineError) {
    const auto path = (cdrmix::test::scratch_dir("fuzz_zip_claim") / "x.pt").string();
    const float w[] = {1.5f, -2.0f};
    {
        caffe2::serialize::PyTorchStreamWriter zip(path);
        zip.writeRecord("data/0", w, sizeof w);
        zip.writeEndOfFile();
    }
    EXPECT_GE(cdrmix::check_zip_bounds(path), 1);
    std::string bytes;
    {
        std::ifstream in(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    // The record's central directory entry: its signature before its name; sizes at 20 and 24.
    const size_t entry = bytes.rfind("PK\x01\x02", bytes.rfind("x/data/0"));
    ASSERT_NE(entry, std::string::npos);
    for (size_t at : {entry + 20, entry + 24}) bytes.replace(at, 4, "\xff\xff\xff\x7f");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    const std::string msg = error_of([&] { cdrmix::check_zip_bounds(path); });
    EXPECT_NE(msg.find(path + ": not a readable torch.save/LibTorch archive: record 'x/data/0' claims 2147483647 bytes at "
                              "offset "),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find(", beyond the file's " + std::to_string(bytes.size()) + " bytes"), std::string::npos) << msg;
    EXPECT_EQ(error_of([&] { cdrmix::read_torch_save(path); }), msg);
}
