// `cdrmix data split`: a seeded eval split of a JSONL file (train.jsonl + val.jsonl).
#include "cli/data/subcommands.hpp"

#include <cdrmix/atomic_file.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <unordered_set>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

bool blank(const std::string &line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

int64_t count_records(const std::string &path) {
    int64_t total = 0;
    JsonlLines lines(path);
    for (std::string line; lines.next(line);) total += blank(line) ? 0 : 1;
    return total;
}

// Floyd's sampling: `want` distinct record indices in O(want) memory.
std::unordered_set<int64_t> sample_indices(int64_t total, int64_t want, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::unordered_set<int64_t> chosen;
    for (int64_t j = total - want; j < total; ++j) {
        const int64_t t = std::uniform_int_distribution<int64_t>(0, j)(rng);
        if (!chosen.insert(t).second) chosen.insert(j);
    }
    return chosen;
}

class Split final : public DataSubcommand {
public:
    explicit Split(CLI::App &data)
        : DataSubcommand(data.add_subcommand("split", "Split a JSONL file into train.jsonl and val.jsonl (seeded)")) {
        app().add_option("input", inputs_, "The .jsonl file")->required();
        app().add_option("-o,--output", output_, "Folder for train.jsonl and val.jsonl")->required();
        app().add_option("--val-size", val_size_, "Records in the val split");
        app().add_option("--val-fraction", val_fraction_, "Share of records in the val split");
        app().add_option("--seed", seed_, "Sampling seed (default 42)");
    }

    int run() override {
        if (inputs_.size() != 1 || input_kind(inputs_[0]) != InputKind::Jsonl)
            throw Error("cdrmix data split: give exactly one .jsonl file");
        if (val_size_ > 0 && val_fraction_ > 0) throw Error("cdrmix data split: give --val-size or --val-fraction, not both");
        const std::string &input = inputs_[0];
        const int64_t total = count_records(input);
        const int64_t want = val_size_ > 0 ? val_size_ : static_cast<int64_t>(std::llround(double(total) * val_fraction_));
        if (want < 1 || want >= total)
            throw Error("cdrmix data split: " + input + " has " + std::to_string(total) +
                        " records; the val split must take at least 1 and leave at least 1");
        const auto chosen = sample_indices(total, want, seed_);
        fs::create_directories(output_);
        const std::string train_path = (fs::path(output_) / "train.jsonl").string();
        const std::string val_path = (fs::path(output_) / "val.jsonl").string();
        AtomicFileWriter train(train_path), val(val_path);
        JsonlLines lines(input);
        int64_t index = 0;
        for (std::string line; lines.next(line);)
            if (!blank(line)) (chosen.count(index++) ? val : train).write(line + "\n");
        train.commit();
        val.commit();
        std::printf("wrote %s (%lld records) and %s (%lld records), seed %llu\n", train_path.c_str(),
                    static_cast<long long>(total - want), val_path.c_str(), static_cast<long long>(want),
                    static_cast<unsigned long long>(seed_));
        return 0;
    }

private:
    std::vector<std::string> inputs_;
    std::string output_;
    int64_t val_size_ = 0;
    double val_fraction_ = 0;
    uint64_t seed_ = 42;
};

} // namespace

std::unique_ptr<DataSubcommand> add_split(CLI::App &data) { return std::make_unique<Split>(data); }

} // namespace cdrmix
