// `cdrmix export CHECKPOINT --format hf|gguf -o OUT [--dtype f32|f16]`: a
// checkpoint as a Hugging Face folder (interop/export_hf.hpp) or a llama.cpp
// GGUF file (interop/export_gguf.hpp). CHECKPOINT is a checkpoint folder, a
// run folder (its checkpoints/latest) or a checkpoints/ folder (its latest).
#pragma once

#include <cdrmix/registry.hpp>

#include <CLI/CLI.hpp>

#include <string>

namespace cdrmix {

struct ExportOptions {
    std::string checkpoint, format, out;
    std::string dtype = "f32";
    std::string license = "other";
};

CLI::App *add_export_command(CLI::App &app, ExportOptions &options);

// Returns the exit code; errors a user can cause throw cdrmix::Error (one line).
// The registry must hold the loaded plugins' factories (the checkpoint's blocks).
int run_export_command(const ExportOptions &options, const Registry &registry);

} // namespace cdrmix
