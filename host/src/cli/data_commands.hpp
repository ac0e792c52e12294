// `cdrmix data ...` (corpus tools, statistics, pipeline benchmark) and
// `cdrmix tokenizer train`: one file per subcommand in cli/data/.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cdrmix {

class DataSubcommand;

class DataCommands {
public:
    // Adds the subcommands to `app`. plugin_paths is read when a command runs,
    // after parsing has filled it.
    DataCommands(CLI::App &app, const std::vector<std::string> &plugin_paths);
    ~DataCommands();
    bool selected() const;
    int run();

private:
    std::vector<std::unique_ptr<DataSubcommand>> commands_;
};

} // namespace cdrmix
