#include "interop/model_card.hpp"

#include "metrics/record_fields.hpp"
#include "run/run_folder.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace fs = std::filesystem;

namespace cdrmix {

namespace {

int64_t count(const torch::nn::Module &m) {
    int64_t n = 0;
    for (const auto &p : m.parameters()) n += p.numel();
    return n;
}

// What one token uses: everything but the blocks' unused parts (routed experts it was not sent to).
int64_t active_parameters(const Model &model) {
    int64_t active = model.num_parameters();
    for (const auto &m : model.modules(/*include_self=*/false))
        if (auto layer = std::dynamic_pointer_cast<Layer>(m))
            for (const Block *b : {&layer->mixer(), &layer->feed_forward()}) active += b->active_parameters() - count(*b);
    return active;
}

std::string describe_experts(const ModelSpec &spec) {
    std::map<std::string, int> kinds; // "8 experts, top-2" -> layers with it
    for (const auto &layer : spec.layers) {
        const Json &ffn = layer.ffn.config;
        if (ffn.value("type", "") != "moe") continue;
        std::string kind = std::to_string(ffn.value("num_experts", int64_t(0))) + " experts";
        if (ffn.contains("top_k")) kind += ", top-" + std::to_string(ffn["top_k"].get<int64_t>());
        if (ffn.value("num_shared_experts", int64_t(0)) > 0)
            kind += ", " + std::to_string(ffn["num_shared_experts"].get<int64_t>()) + " shared";
        ++kinds[kind];
    }
    if (kinds.empty()) return "none (dense)";
    std::string out;
    for (const auto &[kind, layers] : kinds)
        out += (out.empty() ? "" : "; ") + kind + " in " + std::to_string(layers) + " of " +
               std::to_string(spec.num_layers) + " layers";
    return out;
}

// The run folder's metrics.jsonl: the checkpoint sits in <run>/checkpoints/[<trainer>/]step-N.
fs::path find_metrics(const fs::path &checkpoint_dir) {
    fs::path dir = checkpoint_dir;
    for (int up = 0; up < 3 && dir.has_parent_path(); ++up) {
        dir = dir.parent_path();
        if (fs::is_regular_file(dir / run_layout::metrics)) return dir / run_layout::metrics;
    }
    return {};
}

// The last train loss and val loss recorded at or before `step`.
void read_losses(const fs::path &metrics, int64_t step, CardFacts &f) {
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
        const Json r = Json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!r.is_object() || r.value(fields::step::step, step + 1) > step) continue; // a crash's partial last line too
        const std::string event = r.value(fields::event, "");
        if (event == fields::events::step && r.contains(fields::step::loss))
            f.train_loss = r[fields::step::loss].get<double>();
        if (event == fields::events::eval && r.contains(fields::eval::val_loss))
            f.val_loss = r[fields::eval::val_loss].get<double>();
    }
}

std::string loss_text(const std::optional<double> &loss) {
    if (!loss) return "not recorded";
    char text[32];
    std::snprintf(text, sizeof text, "%.4f", *loss);
    return text;
}

} // namespace

CardFacts card_facts(const LoadedCheckpoint &c) {
    CardFacts f;
    const ModelSpec &spec = c.model->spec();
    f.name = spec.name;
    f.parameters = c.model->num_parameters();
    f.active_parameters = active_parameters(*c.model);
    f.layers = spec.num_layers;
    f.hidden = spec.hidden_size;
    f.experts = describe_experts(spec);
    f.tokenizer = c.tokenizer->kind() + ", " + std::to_string(c.tokenizer->vocab_size()) + " tokens";
    if (c.run_config.contains("data")) f.data = c.run_config["data"].dump();
    if (c.run_config.contains("script")) {
        f.command = "cdrmix run " + c.run_config["script"].get<std::string>();
        for (const auto &o : c.run_config.value("overrides", Json::array())) f.command += " " + o.get<std::string>();
    }
    if (c.trainer_state.contains("step")) {
        f.steps = c.trainer_state["step"].get<int64_t>();
        if (c.trainer_state.value("val_loss", Json()).is_number()) f.val_loss = c.trainer_state["val_loss"].get<double>();
        if (const fs::path metrics = find_metrics(c.dir); !metrics.empty()) read_losses(metrics, *f.steps, f);
    }
    return f;
}

std::string model_card(const CardFacts &f) {
    std::string s = "---\nlicense: " + f.license + "\nlibrary_name: " + f.library_name + "\ntags:\n";
    for (const auto &t : f.tags) s += "- " + t + "\n";
    s += "pipeline_tag: text-generation\n---\n\n";
    s += "# " + f.name + "\n\n";
    s += "A language model trained with CDRmix and exported by `cdrmix export`. " + f.format +
         "\n\n";
    s += "| | |\n|---|---|\n";
    auto row = [&](const std::string &k, const std::string &v) { s += "| " + k + " | " + v + " |\n"; };
    row("parameters", std::to_string(f.parameters) + " total, " + std::to_string(f.active_parameters) +
                          " active per token");
    row("layers", std::to_string(f.layers) + " (hidden size " + std::to_string(f.hidden) + ")");
    row("experts", f.experts);
    row("tokenizer", f.tokenizer);
    row("data", f.data.empty() ? "not recorded" : "`" + f.data + "`");
    row("steps", f.steps ? std::to_string(*f.steps) : "not recorded");
    row("final train loss", loss_text(f.train_loss));
    row("final val loss", loss_text(f.val_loss));
    row("trained by", f.command.empty() ? "not recorded" : "`" + f.command + "`");
    return s;
}

} // namespace cdrmix
