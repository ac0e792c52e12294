// `cdrmix eval CHECKPOINT` (held-out loss and perplexity) and
// `cdrmix generate CHECKPOINT --prompt TEXT` (streaming sampling). CHECKPOINT is
// a checkpoint folder, a run folder (its checkpoints/latest), a checkpoints/
// folder (its latest), or `auto`: the newest checkpoint under --runs-dir.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace cdrmix {

class EvalGenerateCommands {
public:
    // Adds the two subcommands to app.
    explicit EvalGenerateCommands(CLI::App &app);
    bool selected() const { return *eval_ || *generate_; }
    // Runs the selected one (plugins must be loaded); returns the exit code.
    int run() const;

private:
    int run_eval() const;
    int run_generate() const;

    CLI::App *eval_ = nullptr, *generate_ = nullptr;
    std::string checkpoint_, runs_dir_ = "runs";
    // eval
    std::vector<std::string> data_;
    std::string split_ = "val";
    int64_t batch_size_ = 0, seq_len_ = 0, batches_ = 0;
    bool json_ = false;
    // generate
    std::string prompt_;
    double temperature_ = 0.8, top_p_ = 1.0;
    int64_t top_k_ = 0, max_tokens_ = 200;
    int64_t seed_ = -1;
    std::vector<std::string> stop_;
};

} // namespace cdrmix
