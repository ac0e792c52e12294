#include "cli/export_command.hpp"

#include "interop/export_gguf.hpp"
#include "interop/export_hf.hpp"
#include "train/checkpoint.hpp"

#include <cstdio>

namespace cdrmix {

CLI::App *add_export_command(CLI::App &app, ExportOptions &o) {
    auto *cmd = app.add_subcommand("export", "Write a checkpoint as a Hugging Face folder or a llama.cpp GGUF file");
    cmd->add_option("checkpoint", o.checkpoint, "Checkpoint folder or run folder")->required();
    cmd->add_option("--format", o.format, "hf (folder: safetensors, config.json, model card) or gguf (llama.cpp rwkv7)")
        ->required()
        ->check(CLI::IsMember({"hf", "gguf"}));
    cmd->add_option("-o,--output", o.out, "The folder (hf) or file (gguf) to write")->required();
    cmd->add_option("--dtype", o.dtype, "f32 (default) or f16")->check(CLI::IsMember({"f32", "f16"}));
    cmd->add_option("--license", o.license, "The model card's license (hf; default: other)");
    cmd->footer("gguf takes dense RWKV-7 models with a byte or char tokenizer; hf writes dense RWKV-7 in "
                "flash-linear-attention's convention and any other model under CDRmix's own model type.");
    return cmd;
}

int run_export_command(const ExportOptions &o, const Registry &registry) {
    const LoadedCheckpoint checkpoint = load_checkpoint(resolve_checkpoint(o.checkpoint), registry);
    const std::string dtype = o.dtype == "f16" ? "float16" : "float32";
    const std::string summary = o.format == "hf" ? export_hf(checkpoint, o.out, {dtype, o.license})
                                                 : export_gguf(checkpoint, o.out, {dtype});
    std::printf("%s\n", summary.c_str());
    return 0;
}

} // namespace cdrmix
