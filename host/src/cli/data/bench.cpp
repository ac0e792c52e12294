// `cdrmix data bench`: tokens/s of a data source's batches alone (no model).
#include "cli/data/subcommands.hpp"

#include "bench/data_throughput.hpp"
#include "core/plugin_loader.hpp"

#include <cdrmix/registry.hpp>

#include <cstdio>

namespace cdrmix {

namespace {

// A value as JSON when it parses (numbers, booleans, lists), else as a string.
Json parse_setting_value(const std::string &value) {
    Json j = Json::parse(value, nullptr, false);
    return j.is_discarded() ? Json(value) : j;
}

class Bench final : public DataSubcommand {
public:
    Bench(CLI::App &data, const std::vector<std::string> &plugin_paths)
        : DataSubcommand(data.add_subcommand("bench", "Tokens/s of a data source's batches alone (no model)")),
          plugin_paths_(plugin_paths) {
        app().add_option("settings", settings_, "The data config as key=value (type=jsonl path=...)")->required();
        app().add_option("--batch-size", batch_size_, "Batch size (default 16)");
        app().add_option("--seq-len", seq_len_, "Sequence length (default 256)");
        app().add_option("--seconds", seconds_, "Time per split (default 2)");
    }

    int run() override {
        const Json cfg = data_config();
        PluginLoader loader(Registry::global());
        loader.load_all(PluginLoader::search_path(plugin_paths_));
        for (const auto &p : loader.problems()) std::fprintf(stderr, "cdrmix: warning: %s\n", p.message.c_str());
        const auto built = std::chrono::steady_clock::now();
        auto data = Registry::global().create_data_source(Config(cfg, "data", "command line"));
        std::printf("%s (ready in %.2f s)\n", data->describe().c_str(), seconds_since(built));
        for (Split split : {Split::Train, Split::Val}) {
            const DataThroughput r = measure_data_throughput(*data, split, batch_size_, seq_len_, seconds_);
            std::printf("%-5s batch %lld x seq_len %lld: %lld batches in %.2f s, %.0f tokens/s\n",
                        split == Split::Train ? "train" : "val", static_cast<long long>(batch_size_),
                        static_cast<long long>(seq_len_), static_cast<long long>(r.batches), r.seconds, r.tokens_per_s);
        }
        return 0;
    }

private:
    Json data_config() const {
        Json cfg = Json::object();
        for (const auto &kv : settings_) {
            const size_t eq = kv.find('=');
            if (eq == std::string::npos || eq == 0)
                throw Error("cdrmix data bench: bad setting '" + kv + "': expected key=value");
            cfg[kv.substr(0, eq)] = parse_setting_value(kv.substr(eq + 1));
        }
        if (!cfg.contains("type"))
            throw Error("cdrmix data bench: give the source's type=..., e.g. type=jsonl path=data/*.jsonl");
        return cfg;
    }

    const std::vector<std::string> &plugin_paths_;
    std::vector<std::string> settings_;
    int64_t batch_size_ = 16, seq_len_ = 256;
    double seconds_ = 2;
};

} // namespace

std::unique_ptr<DataSubcommand> add_bench(CLI::App &data, const std::vector<std::string> &plugin_paths) {
    return std::make_unique<Bench>(data, plugin_paths);
}

} // namespace cdrmix
