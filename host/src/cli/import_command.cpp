#include "cli/import_command.hpp"

#include <cstdio>

namespace cdrmix {

ImportCommand::ImportCommand(CLI::App &app) {
    command_ = app.add_subcommand("import", "Turn a published RWKV-7 model into a CDRmix checkpoint folder");
    command_->add_option("format", options_.format,
                         "rwkv-lm (a .pth or .safetensors file with RWKV-LM's names) or hf (a Hugging Face folder "
                         "in the flash-linear-attention RWKV-7 convention)")
        ->required();
    command_->add_option("source", options_.source, "The file (rwkv-lm) or folder (hf)")->required();
    command_->add_option("-o,--out", options_.out, "The checkpoint folder to create (new or empty)")->required();
    command_->add_option("--dtype", options_.dtype,
                         "float32, float64, bfloat16 or float16 (default: the source's; float32 widens bf16/fp16)");
    command_->add_option("--vocab", options_.vocab,
                         "Tokenizer: an RWKV World vocabulary (rwkv_vocab_v20230424.txt) or a tokenizer .json/.model "
                         "(default: an hf folder's rwkv_vocab_v20230424.txt, else token ids only)");
    command_->footer("Sizes and LoRA ranks are read from the tensors. Every tensor must fit the model (layer 0's "
                     "unused v0/v1/v2 are ignored); a missing, misshapen or unknown tensor is an error naming it.");
}

int ImportCommand::run() const {
    // Checked by the same schema as cdrmix.import{} in Lua.
    Json settings = {{"format", options_.format}, {"source", options_.source}, {"out", options_.out}};
    if (!options_.dtype.empty()) settings["dtype"] = options_.dtype;
    if (!options_.vocab.empty()) settings["vocab"] = options_.vocab;
    const ImportOptions options = ImportOptions::from_config(Config(settings, "import", "command line"));
    std::string report;
    import_model(options, Registry::global(), &report);
    std::printf("%s\n", report.c_str());
    return 0;
}

} // namespace cdrmix
