#include "cli/data_commands.hpp"
#include "cli/data/subcommands.hpp"

namespace cdrmix {

DataCommands::DataCommands(CLI::App &app, const std::vector<std::string> &plugin_paths) {
    auto *data = app.add_subcommand("data", "Corpus tools: to-jsonl, split, tokenize, stats, bench, dedup, filter, synth-chat");
    data->require_subcommand(1);
    commands_.push_back(add_to_jsonl(*data));
    commands_.push_back(add_split(*data));
    commands_.push_back(add_tokenize(*data));
    commands_.push_back(add_stats(*data));
    commands_.push_back(add_bench(*data, plugin_paths));
    commands_.push_back(add_dedup(*data));
    commands_.push_back(add_filter(*data, plugin_paths));
    commands_.push_back(add_synth_chat(*data));
    auto *tokenizer = app.add_subcommand("tokenizer", "Tokenizer tools");
    tokenizer->require_subcommand(1);
    commands_.push_back(add_tokenizer_train(*tokenizer));
}

DataCommands::~DataCommands() = default;

bool DataCommands::selected() const {
    for (const auto &c : commands_)
        if (c->parsed()) return true;
    return false;
}

int DataCommands::run() {
    for (const auto &c : commands_)
        if (c->parsed()) return c->run();
    return 0;
}

} // namespace cdrmix
