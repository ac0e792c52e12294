// `cdrmix inspect CHECKPOINT --text TEXT [--json] [--specialisation ...]`:
// the routing inspector headless (model/routing_inspector.hpp). For each token
// of the text, the experts it went to in every MoE layer with the router's
// probabilities; for each expert, the tokens of the text it received most; and
// with --specialisation, the tokens and token classes each expert receives
// most over a held-out sample of the run's data.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace cdrmix {

class InspectCommand {
public:
    explicit InspectCommand(CLI::App &app);
    bool selected() const { return static_cast<bool>(*command_); }
    // Runs it (plugins must be loaded); returns the exit code.
    int run() const;

private:
    CLI::App *command_ = nullptr;
    std::string checkpoint_, text_, text_file_, runs_dir_ = "runs", split_ = "val";
    std::vector<std::string> data_;
    bool json_ = false, specialisation_ = false;
    int64_t batches_ = 8, batch_size_ = 0, seq_len_ = 0, top_ = 8;
};

} // namespace cdrmix
