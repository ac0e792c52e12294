#include "interop/export_hf.hpp"

#include "core/files.hpp"
#include "interop/fla_names.hpp"
#include "interop/model_card.hpp"
#include "train/safetensors.hpp"

#include <cdrmix/atomic_file.hpp>
#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

Json cdrmix_hf_config(const ModelSpec &spec, const std::string &dtype) {
    return {{"architectures", {"CDRmixForCausalLM"}},
            {"model_type", "cdrmix"},
            {"vocab_size", spec.vocab_size},
            {"hidden_size", spec.hidden_size},
            {"num_hidden_layers", spec.num_layers},
            {"torch_dtype", dtype},
            // The whole spec: with the plugins it names, `cdrmix` rebuilds the model from it.
            {"cdrmix_model", spec.source_json}};
}

NamedTensors in_dtype(NamedTensors tensors, const std::string &dtype) {
    const at::ScalarType t = dtype == "float16" ? at::kHalf : at::kFloat;
    for (auto &[name, tensor] : tensors)
        if (tensor.is_floating_point()) tensor = tensor.to(t);
    return tensors;
}

} // namespace

NamedTensors fla_rwkv7_weights(const NamedWeights &weights) {
    NamedTensors out;
    for (const auto &[name, tensor] : weights) {
        const std::optional<FlaMapped> fla = rwkv_lm_to_fla(name);
        if (!fla) throw Error("cannot export to fla: the model's tensor '" + name + "' has no name in fla's RWKV-7");
        const at::Tensor t = fla->transposed ? tensor.t().contiguous() : tensor;
        out.emplace_back(fla->name, fla->flat ? t.reshape({-1}) : t);
    }
    return out;
}

Json fla_rwkv7_config(const Rwkv7Dims &d, const std::string &dtype) {
    return {{"architectures", {"RWKV7ForCausalLM"}},
            {"model_type", "rwkv7"},
            {"vocab_size", d.vocab},
            {"hidden_size", d.hidden},
            {"num_hidden_layers", d.layers},
            {"head_dim", d.head_size},
            {"num_heads", d.hidden / d.head_size},
            {"intermediate_size", d.ffn},
            {"hidden_ratio", double(d.ffn) / double(d.hidden)},
            {"decay_low_rank_dim", d.decay_rank},
            {"a_low_rank_dim", d.a_rank},
            {"v_low_rank_dim", d.v_rank},
            {"gate_low_rank_dim", d.gate_rank},
            {"hidden_act", "sqrelu"},
            {"norm_first", true},
            {"norm_bias", true},
            {"norm_eps", d.norm_eps},
            {"tie_word_embeddings", false},
            // fla's defaults (1 and 2) would stop generation at ordinary tokens of a CDRmix vocabulary.
            {"bos_token_id", nullptr},
            {"eos_token_id", nullptr},
            {"torch_dtype", dtype}};
}

std::string export_hf(const LoadedCheckpoint &c, const std::string &out_dir, const HfExportOptions &o) {
    if (o.dtype != "float32" && o.dtype != "float16")
        throw Error("export: --dtype must be f32 or f16 for hf, got '" + o.dtype + "'");
    const fs::path out(out_dir);
    if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
        throw Error("export: '" + out_dir + "' exists and is not an empty folder; name a new one");
    NamedWeights weights = named_weights(*c.model);
    const ModelSpec &spec = c.model->spec();
    CardFacts card = card_facts(c);
    card.license = o.license;
    card.tags = {"cdrmix", "rwkv"};
    Json config;
    NamedTensors tensors;
    // The fla convention when the model fits it; otherwise CDRmix's own, never a refusal.
    const bool dense_rwkv7 = rwkv7_blocker(spec, weights).empty();
    if (dense_rwkv7) {
        const Rwkv7Dims dims = dense_rwkv7_dims(spec, weights, "fla");
        tensors = fla_rwkv7_weights(weights);
        config = fla_rwkv7_config(dims, o.dtype);
        card.library_name = "transformers";
        card.tags.push_back("rwkv7");
        card.format = "The folder follows flash-linear-attention's RWKV-7 convention: load it with "
                      "`import fla; AutoModelForCausalLM.from_pretrained(DIR)`, or convert it with llama.cpp's "
                      "`convert_hf_to_gguf.py`. The tokenizer is CDRmix's (`cdrmix_tokenizer.json`).";
    } else {
        for (auto &[name, t] : weights) tensors.emplace_back(name, t);
        config = cdrmix_hf_config(spec, o.dtype);
        card.library_name = "cdrmix";
        if (card.experts != "none (dense)") card.tags.push_back("moe");
        card.format = "The weights keep CDRmix's (RWKV-LM) names and `config.json` holds CDRmix's model spec "
                      "(`cdrmix_model`); CDRmix with the plugins it names runs it. The tokenizer is CDRmix's "
                      "(`cdrmix_tokenizer.json`).";
    }

    const fs::path tmp = out.string() + ".tmp";
    remove_tree(tmp);
    fs::create_directories(tmp);
    try {
        save_safetensors((tmp / "model.safetensors").string(), in_dtype(std::move(tensors), o.dtype),
                         {{"format", "pt"}});
        write_json_atomic((tmp / "config.json").string(), config);
        write_file_atomic((tmp / "README.md").string(), model_card(card));
        write_json_atomic((tmp / "cdrmix_tokenizer.json").string(), c.tokenizer->to_json());
        fs::rename(tmp, out);
    } catch (...) {
        std::error_code ec;
        remove_tree(tmp, ec);
        throw;
    }
    return "wrote " + out_dir + " (" + (dense_rwkv7 ? "fla RWKV-7" : "CDRmix model type") + ", " + o.dtype + ")";
}

} // namespace cdrmix
