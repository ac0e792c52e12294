#include "cli/checkpoint_args.hpp"

#include "core/yaml_config.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <cstdlib>

namespace cdrmix {

std::string checkpoint_dir(const std::string &spec, const std::string &runs_dir) {
    if (spec != "auto") return resolve_checkpoint(spec);
    const std::string found = find_latest_checkpoint(runs_dir, "");
    if (found.empty()) throw Error("no checkpoint under '" + runs_dir + "' (auto looks for <run>/checkpoints/latest)");
    return found;
}

namespace {

// "key=value" -> value typed as a number, a boolean or a string; dots in key reach nested tables.
void apply_data_override(Json &cfg, const std::string &kv) {
    const auto eq = kv.find('=');
    const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
    if (key.empty()) throw Error("--data '" + kv + "': expected key=value or a YAML file");
    Json value = text;
    char *end = nullptr;
    const double num = std::strtod(text.c_str(), &end);
    if (!text.empty() && end && *end == '\0')
        value = num == double(static_cast<int64_t>(num)) ? Json(static_cast<int64_t>(num)) : Json(num);
    else if (text == "true" || text == "false")
        value = text == "true";
    Json *node = &cfg;
    size_t start = 0;
    for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
        node = &(*node)[key.substr(start, dot - start)];
        if (!node->is_object()) *node = Json::object();
    }
    (*node)[key.substr(start)] = value;
}

// The data config: the run's saved one, replaced by a YAML file and/or patched by key=value.
std::pair<Json, std::string> data_config(const LoadedCheckpoint &ckpt, const std::vector<std::string> &specs) {
    Json cfg = ckpt.run_config.is_object() && ckpt.run_config.contains("data") ? ckpt.run_config["data"] : Json();
    std::string source = ckpt.run_config_file;
    for (const auto &s : specs) {
        if (s.find('=') != std::string::npos) {
            if (!cfg.is_object()) cfg = Json::object();
            apply_data_override(cfg, s);
        } else {
            cfg = load_yaml_file(s);
            source = s;
        }
    }
    if (!cfg.is_object() || cfg.empty())
        throw Error(ckpt.dir + ": no data config saved with this checkpoint; pass --data FILE.yaml or --data type=text "
                               "--data path=CORPUS");
    return {cfg, source};
}

} // namespace

int64_t saved_train_int(const LoadedCheckpoint &c, const char *key, int64_t fallback) {
    const Json &t = c.trainer_state.is_object() ? c.trainer_state.value("train", Json::object()) : Json::object();
    return t.is_object() && t.contains(key) && t[key].is_number_integer() ? t[key].get<int64_t>() : fallback;
}

std::string describe_tokenizer(const Tokenizer &t) { return t.kind() + ", " + std::to_string(t.vocab_size()) + " tokens"; }

std::shared_ptr<DataSource> checkpoint_data(const LoadedCheckpoint &ckpt, const std::vector<std::string> &specs,
                                            const std::string &command) {
    auto [cfg, source] = data_config(ckpt, specs);
    auto data = Registry::global().create_data_source(Config(cfg, "data", source));
    if (data->tokenizer()->to_json() != ckpt.tokenizer->to_json())
        throw Error(command + ": the data's tokenizer (" + describe_tokenizer(*data->tokenizer()) +
                    ") differs from the checkpoint's (" + describe_tokenizer(*ckpt.tokenizer) +
                    "): token ids would not mean the same characters; use the run's corpus or tokenizer");
    return data;
}

} // namespace cdrmix
