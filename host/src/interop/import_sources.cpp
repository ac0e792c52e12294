#include "interop/import_sources.hpp"

#include "interop/fla_names.hpp"
#include "interop/import_torch_save.hpp"
#include "train/safetensors.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

bool is_zip(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

Json read_json_file(const fs::path &path) {
    std::ifstream in(path);
    if (!in) throw Error(path.string() + ": missing");
    Json j = Json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(path.string() + ": not a JSON object");
    return j;
}

// The shard files a model.safetensors.index.json names: plain file names inside the folder.
std::vector<std::string> index_shards(const fs::path &index) {
    const Json j = read_json_file(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error(index.string() + ": no 'weight_map' object");
    std::set<std::string> files;
    for (const auto &f : j["weight_map"]) {
        if (!f.is_string()) throw Error(index.string() + ": a 'weight_map' entry is not a file name");
        const std::string name = f.get<std::string>();
        // The index is untrusted: a name must not reach outside the folder.
        if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
            throw Error(index.string() + ": 'weight_map' names '" + name + "', not a file in the folder");
        files.insert(name);
    }
    return {files.begin(), files.end()};
}

// The fla config keys that make a model CDRmix's RWKV-7 cannot represent.
void check_hf_config(const Json &config, const std::string &where) {
    const Json type = config.contains("model_type") ? config["model_type"] : Json("(none)");
    if (type != "rwkv7" && type != "rwkv7_fla")
        throw Error(where + ": model_type " + (type.is_string() ? "'" + type.get<std::string>() + "'" : type.dump()) +
                    " is not an RWKV-7 model (expected rwkv7)");
    if (config.contains("attn") && !config["attn"].is_null())
        throw Error(where + ": 'attn' puts softmax attention on some layers, which the import does not map");
    if (config.contains("hidden_act") && config["hidden_act"] != "sqrelu")
        throw Error(where + ": hidden_act " + config["hidden_act"].dump() + " (RWKV-7's channel mix is sqrelu)");
    if (config.contains("norm_bias") && config["norm_bias"] == false)
        throw Error(where + ": norm_bias false (CDRmix's LayerNorms have a bias)");
}

} // namespace

std::string source_name(const SourceTensors &source, const std::string &rwkv_lm_name) {
    if (source.convention != NameConvention::fla) return rwkv_lm_name;
    const std::optional<FlaMapped> fla = rwkv_lm_to_fla(rwkv_lm_name);
    if (!fla) return rwkv_lm_name;
    return fla->name + " (" + rwkv_lm_name + (fla->transposed ? ", transposed" : "") + ")";
}

std::map<std::string, at::Tensor> read_weight_file(const std::string &path) {
    if (!fs::is_regular_file(path)) throw Error(path + ": no such file");
    return is_zip(path) ? read_torch_save(path) : load_safetensors(path);
}

SourceTensors read_rwkv_lm(const std::string &path) {
    SourceTensors s;
    s.where = path;
    s.tensors = read_weight_file(path);
    return s;
}

SourceTensors read_hf_rwkv7(const std::string &folder) {
    const fs::path dir(folder);
    if (!fs::is_directory(dir)) throw Error(folder + ": not a folder (a Hugging Face model is a folder with config.json)");
    const fs::path config_path = dir / "config.json";
    const Json config = read_json_file(config_path);
    check_hf_config(config, config_path.string());

    std::vector<std::string> files;
    if (fs::is_regular_file(dir / "model.safetensors.index.json")) {
        for (const auto &f : index_shards(dir / "model.safetensors.index.json")) files.push_back((dir / f).string());
    } else {
        for (const char *name : {"model.safetensors", "pytorch_model.bin"})
            if (fs::is_regular_file(dir / name)) {
                files.push_back((dir / name).string());
                break;
            }
    }
    if (files.empty())
        throw Error(folder + ": no model.safetensors, model.safetensors.index.json or pytorch_model.bin");

    SourceTensors s;
    s.where = folder;
    s.convention = NameConvention::fla;
    if (config.contains("norm_eps")) {
        if (!config["norm_eps"].is_number() || config["norm_eps"].get<double>() < 0)
            throw Error(config_path.string() + ": 'norm_eps' is not a non-negative number");
        s.norm_eps = config["norm_eps"].get<double>();
    }
    for (const auto &file : files) {
        for (auto &[name, tensor] : read_weight_file(file)) {
            const std::optional<FlaMapped> mapped = fla_to_rwkv_lm(name);
            const std::string rwkv_name = mapped ? mapped->name : name;
            const bool transposed = mapped && mapped->transposed;
            if (transposed && tensor.dim() != 2)
                throw Error(file + ": tensor '" + name + "' has shape " + c10::str(tensor.sizes()) +
                            ", a LoRA matrix must have two dimensions");
            if (!s.tensors.emplace(rwkv_name, transposed ? tensor.t().contiguous() : tensor).second)
                throw Error(file + ": tensor '" + name + "' appears twice in the folder");
        }
    }
    // Tied embeddings: the head is the embedding matrix.
    const bool tied = config.contains("tie_word_embeddings") && config["tie_word_embeddings"] == true;
    if (tied && !s.tensors.count("head.weight") && s.tensors.count("emb.weight"))
        s.tensors["head.weight"] = s.tensors["emb.weight"];
    return s;
}

} // namespace cdrmix
