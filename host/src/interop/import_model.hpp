// `cdrmix import FORMAT SOURCE -o DIR` and `cdrmix.import{...}`: a published
// RWKV-7 model becomes an ordinary CDRmix checkpoint folder (model.safetensors
// under RWKV-LM names, model.json, tokenizer.json, import.json) that eval,
// generate, describe, `model:load` and a trainer's resume read. Sizes and LoRA
// ranks come from the tensors; every tensor must find its place (layer 0's
// unused v0/v1/v2 excepted), each missing or misshapen one is an error naming it.
#pragma once

#include "interop/import_sources.hpp"

#include <cdrmix/registry.hpp>
#include <cdrmix/schema.hpp>

#include <string>
#include <vector>

namespace cdrmix {

// The import's settings, declared once (schema()) for the command line and Lua.
struct ImportOptions {
    std::string format; // "rwkv-lm" (a .pth or .safetensors file) or "hf" (a flash-linear-attention folder)
    std::string source; // that file or folder
    std::string out;    // the checkpoint folder to create; must not exist or be empty
    std::string dtype;  // float32, float64, bfloat16, float16; empty: the source's
    std::string vocab;  // tokenizer file (a World vocabulary .txt, a tokenizer .json or .model); may be empty

    static const Schema &schema();
    // Checks config against schema() (errors name the key and where it came from).
    static ImportOptions from_config(const Config &config);
};

// The model spec the tensors describe (RWKV-LM names): sizes, head size,
// LoRA ranks and FFN width read from their shapes.
Json rwkv7_spec_from_tensors(const SourceTensors &source, const std::string &name);

// Runs the import (options as from_config() gives them); returns the checkpoint folder. A summary line for the user
// goes to `report` (parameters, dtype, tokenizer, tensors deliberately ignored).
std::string import_model(const ImportOptions &options, const Registry &registry, std::string *report = nullptr);

} // namespace cdrmix
