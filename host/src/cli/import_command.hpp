// `cdrmix import FORMAT SOURCE -o DIR [--dtype T] [--vocab FILE]`: a published
// RWKV-7 model (RWKV-LM .pth/.safetensors, or a Hugging Face folder in the
// flash-linear-attention convention) as a CDRmix checkpoint folder
// (interop/import_model.hpp).
#pragma once

#include "interop/import_model.hpp"

#include <CLI/CLI.hpp>

namespace cdrmix {

class ImportCommand {
public:
    // Adds the subcommand to app.
    explicit ImportCommand(CLI::App &app);
    bool selected() const { return static_cast<bool>(*command_); }
    // Runs the import (plugins must be loaded); returns the exit code.
    int run() const;

private:
    CLI::App *command_ = nullptr;
    ImportOptions options_;
};

} // namespace cdrmix
