// `cdrmix data synth-chat --kind tools|instruct|reasoning -o FILE --n N --seed S --split train|test`:
// the project's synthetic chat corpus (chat/synth_chat.hpp) as JSONL.
#include "chat/synth_chat.hpp"
#include "cli/data/subcommands.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <cstdio>

namespace cdrmix {

namespace {

class SynthChat final : public DataSubcommand {
public:
    explicit SynthChat(CLI::App &data)
        : DataSubcommand(data.add_subcommand("synth-chat", "Write synthetic chat conversations with checkable answers")) {
        app().add_option("--kind", kind_, "tools, instruct or reasoning")->required();
        app().add_option("-o,--output", output_, "The .jsonl file to write")->required();
        app().add_option("--n", n_, "Conversations (default 1000)");
        app().add_option("--seed", seed_, "Seed: the same seed gives the same file (default 1)");
        app().add_option("--start", start_, "Index of the first conversation (default 0)");
        app().add_option("--split", split_, "train or test: test files ask only questions no train file asks (default train)")
            ->check(CLI::IsMember({"train", "test"}));
    }

    int run() override {
        const SynthKind kind = parse_synth_kind(kind_);
        if (n_ < 1 || n_ > 10'000'000 || start_ < 0) throw Error("synth-chat: need 1 <= --n <= 10000000 and --start >= 0");
        AtomicFileWriter out(output_);
        const SynthSplit split = split_ == "test" ? SynthSplit::Test : SynthSplit::Train;
        for (int64_t i = 0; i < n_; ++i) out.write(synth_conversation(kind, seed_, start_ + i, split).dump() + "\n");
        out.commit();
        std::printf("wrote %lld %s %s conversations (seed %llu, from index %lld) -> %s\n", static_cast<long long>(n_),
                    split_.c_str(), kind_.c_str(), static_cast<unsigned long long>(seed_), static_cast<long long>(start_),
                    output_.c_str());
        return 0;
    }

private:
    std::string kind_, output_, split_ = "train";
    int64_t n_ = 1000, start_ = 0;
    uint64_t seed_ = 1;
};

} // namespace

std::unique_ptr<DataSubcommand> add_synth_chat(CLI::App &data) { return std::make_unique<SynthChat>(data); }

} // namespace cdrmix
