// TensorBoard event files: CRC-32C against the published test vectors (RFC
// 3720, B.4, and the "123456789" check value), TFRecord framing read back with its checksums, and the sink's
// events (file version first, then one per record with a summary).
#include "core/files.hpp"
#include "metrics/tensorboard.hpp"
#include "test_util.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

namespace {

std::string run_of(int from, int step, int count) {
    std::string s;
    for (int i = 0; i < count; ++i) s.push_back(char(from + step * i));
    return s;
}

// The records of a TFRecord file, each checked against both of its checksums.
std::vector<std::string> read_records(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string file = ss.str();
    std::vector<std::string> out;
    size_t at = 0;
    while (at < file.size()) {
        EXPECT_LE(at + 12, file.size());
        uint64_t length = 0;
        uint32_t length_crc = 0, data_crc = 0;
        std::memcpy(&length, file.data() + at, 8);
        std::memcpy(&length_crc, file.data() + at + 8, 4);
        EXPECT_EQ(length_crc, cdrmix::masked_crc32c(std::string_view(file.data() + at, 8)));
        const std::string data = file.substr(at + 12, length);
        std::memcpy(&data_crc, file.data() + at + 12 + length, 4);
        EXPECT_EQ(data_crc, cdrmix::masked_crc32c(data));
        out.push_back(data);
        at += 16 + length;
    }
    return out;
}

} // namespace

TEST(TensorBoard, Crc32cMatchesThePublishedVectors) {
    EXPECT_EQ(cdrmix::crc32c(std::string(32, '\0')), 0x8A9136AAu);
    EXPECT_EQ(cdrmix::crc32c(std::string(32, '\xff')), 0x62A8AB43u);
    EXPECT_EQ(cdrmix::crc32c(run_of(0, 1, 32)), 0x46DD794Eu);
    // A running value over pieces equals the whole (checkpoint manifests hash files piece by piece).
    const std::string whole = run_of(0, 1, 32);
    EXPECT_EQ(cdrmix::crc32c(whole.substr(20), cdrmix::crc32c(whole.substr(0, 20))), 0x46DD794Eu);
    EXPECT_EQ(cdrmix::crc32c(run_of(31, -1, 32)), 0x113FDB5Cu);
    EXPECT_EQ(cdrmix::crc32c("123456789"), 0xE3069283u);
    const uint32_t c = cdrmix::crc32c("123456789");
    EXPECT_EQ(cdrmix::masked_crc32c("123456789"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, EventsAreFramedAndCarryTheRunsScalarsAndSamples) {
    const auto dir = cdrmix::test::scratch_dir("tensorboard");
    std::string path;
    {
        cdrmix::TensorBoardSink sink(dir.string());
        path = sink.path();
        sink.write({{"event", "step"}, {"step", 1}, {"time", 1000.5}, {"loss", 3.25}, {"lr", 1e-3},
                    {"moe", {{{"layer", 1}, {"load_cv", 0.5}, {"losses", {{"load_balance", 0.01}}}}}}});
        sink.write({{"event", "eval"}, {"step", 1}, {"val_loss", 3.5}, {"val_ppl", 33.1}});
        sink.write({{"event", "sample"}, {"step", 1}, {"text", "hello"}});
        sink.write({{"event", "checkpoint"}, {"step", 1}, {"path", "x"}}); // nothing to show: no event
    }
    EXPECT_EQ(path.rfind(dir.string() + "/events.out.tfevents.", 0), 0u);
    const auto records = read_records(path);
    ASSERT_EQ(records.size(), 4u);
    EXPECT_NE(records[0].find("brain.Event:2"), std::string::npos);
    for (const char *tag : {"train/loss", "train/lr", "moe/layer1/load_cv", "moe/layer1/load_balance"})
        EXPECT_NE(records[1].find(tag), std::string::npos) << tag;
    EXPECT_EQ(records[1].find("train/grad_norm"), std::string::npos); // absent from the record, absent here
    // The loss as a float32 simple_value (field 2, wire type 5) right after its tag.
    float loss = 3.25f;
    EXPECT_NE(records[1].find("train/loss\x15" + std::string(reinterpret_cast<const char *>(&loss), 4)),
              std::string::npos);
    EXPECT_NE(records[2].find("val/perplexity"), std::string::npos);
    EXPECT_NE(records[3].find("hello"), std::string::npos);
    EXPECT_NE(records[3].find("text"), std::string::npos);
}

TEST(TensorBoard, AnUnwritableFolderIsAnError) {
    const std::string err = cdrmix::test::error_of([] { cdrmix::TensorBoardSink sink("/no/such/folder"); });
    EXPECT_NE(err.find("/no/such/folder/events.out.tfevents."), std::string::npos) << err;
    EXPECT_NE(err.find("cannot open for writing"), std::string::npos) << err;
}
