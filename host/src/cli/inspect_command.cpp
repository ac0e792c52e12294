#include "cli/inspect_command.hpp"

#include "cli/checkpoint_args.hpp"
#include "model/routing_inspector.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/registry.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace cdrmix {

namespace {

// A token's text for a terminal: quoted, with control characters escaped.
std::string shown(const std::string &text) {
    std::string out = "'";
    for (unsigned char c : text) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else out += static_cast<char>(c);
    }
    return out + "'";
}

std::string choices_text(const std::vector<ExpertChoice> &choices) {
    std::string out;
    for (const auto &c : choices) {
        char buf[48];
        std::snprintf(buf, sizeof buf, "%se%lld %.2f", out.empty() ? "" : ", ", static_cast<long long>(c.expert), c.prob);
        out += buf;
    }
    return out.empty() ? "(dropped)" : out;
}

// Per MoE layer and expert: the text's tokens it received, most often first.
Json experts_in_text(const TextRouting &r) {
    Json layers = Json::array();
    for (size_t l = 0; l < r.layers.size(); ++l) {
        std::vector<std::map<std::string, int64_t>> got(static_cast<size_t>(r.num_experts));
        for (const auto &t : r.tokens)
            for (const auto &c : t.layers[l]) ++got[static_cast<size_t>(c.expert)][t.text];
        Json experts = Json::array();
        for (int64_t e = 0; e < r.num_experts; ++e) {
            std::vector<std::pair<std::string, int64_t>> top(got[e].begin(), got[e].end());
            std::stable_sort(top.begin(), top.end(), [](const auto &a, const auto &b) { return a.second > b.second; });
            Json list = Json::array();
            for (const auto &[text, n] : top) list.push_back({{"text", text}, {"count", n}});
            experts.push_back({{"expert", e}, {"tokens", list}});
        }
        layers.push_back({{"layer", r.layers[l]}, {"experts", experts}});
    }
    return layers;
}

std::string dump(const Json &j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

} // namespace

InspectCommand::InspectCommand(CLI::App &app) {
    command_ = app.add_subcommand("inspect", "Which experts each token of a text goes to, and what each expert receives");
    command_->add_option("checkpoint", checkpoint_, "Checkpoint folder, run folder, or auto")->required();
    auto *text = command_->add_option("--text", text_, "The text to route");
    auto *file = command_->add_option("--text-file", text_file_, "Read the text from this file");
    text->excludes(file);
    command_->add_flag("--json", json_, "Print one JSON object");
    command_->add_flag("--specialisation", specialisation_,
                       "Also count, over a held-out sample, the tokens each expert receives most");
    command_->add_option("--data", data_, "The sample's data: a YAML file and/or key=value (default: the run's data)");
    command_->add_option("--split", split_, "val or train (default val)")->check(CLI::IsMember({"val", "train"}));
    command_->add_option("--batches", batches_, "Batches of the sample (default 8)")->check(CLI::PositiveNumber);
    command_->add_option("--batch-size", batch_size_, "Sequences per batch (default: the run's batch_size)");
    command_->add_option("--seq-len", seq_len_, "Tokens per sequence (default: the run's seq_len)");
    command_->add_option("--top", top_, "Tokens listed per expert (default 8)")->check(CLI::PositiveNumber);
    command_->add_option("--runs-dir", runs_dir_, "Where `auto` looks (default: runs)");
}

int InspectCommand::run() const {
    std::string text = text_;
    if (!text_file_.empty()) {
        std::ifstream in(text_file_, std::ios::binary);
        if (!in) throw Error("inspect: cannot read --text-file '" + text_file_ + "'");
        std::ostringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    if (text.empty() && !specialisation_) throw Error("inspect: give --text, --text-file or --specialisation");
    const LoadedCheckpoint ckpt = load_checkpoint(checkpoint_dir(checkpoint_, runs_dir_), Registry::global());
    Json out = {{"checkpoint", ckpt.dir}};
    if (!text.empty()) {
        const TextRouting r = route_text(*ckpt.model, *ckpt.tokenizer, text);
        out["routing"] = to_json(r);
        out["experts_in_text"] = experts_in_text(r);
        if (!json_) {
            std::printf("checkpoint %s: %zu tokens, %zu MoE layers of %lld experts (expert and router probability)\n",
                        ckpt.dir.c_str(), r.tokens.size(), r.layers.size(), static_cast<long long>(r.num_experts));
            std::printf("%-10s", "token");
            for (int64_t l : r.layers) std::printf("  %-22s", ("layer " + std::to_string(l)).c_str());
            std::printf("\n");
            for (const auto &t : r.tokens) {
                std::printf("%-10s", shown(t.text).c_str());
                for (const auto &c : t.layers) std::printf("  %-22s", choices_text(c).c_str());
                std::printf("\n");
            }
        }
    }
    if (specialisation_) {
        auto data = checkpoint_data(ckpt, data_, "inspect");
        const int64_t B = batch_size_ > 0 ? batch_size_ : saved_train_int(ckpt, "batch_size", 8);
        const int64_t T = seq_len_ > 0 ? seq_len_ : saved_train_int(ckpt, "seq_len", 128);
        ExpertSpecialisation spec(ckpt.tokenizer->vocab_size());
        spec.add_split(*ckpt.model, *data, split_ == "train" ? Split::Train : Split::Val, batches_, B, T);
        const auto layers = spec.summary(*ckpt.tokenizer, top_);
        out["specialisation"] = {{"split", split_}, {"tokens", batches_ * B * T},
                                 {"layers", ExpertSpecialisation::to_json(layers, *ckpt.tokenizer)}};
        if (!json_) {
            std::printf("\nexpert specialisation over %lld %s tokens (%lld batches of %lld x %lld)\n",
                        static_cast<long long>(batches_ * B * T), split_.c_str(), static_cast<long long>(batches_),
                        static_cast<long long>(B), static_cast<long long>(T));
            for (const auto &l : layers) {
                std::printf("layer %lld\n", static_cast<long long>(l.layer));
                for (size_t e = 0; e < l.experts.size(); ++e) {
                    const auto &ex = l.experts[e];
                    std::string classes, top;
                    for (size_t c = 0; c < kTokenClassNames.size(); ++c)
                        if (ex.classes[c] > 0) {
                            char buf[64];
                            std::snprintf(buf, sizeof buf, "%s%s %.0f%%", classes.empty() ? "" : ", ", kTokenClassNames[c],
                                          100.0 * double(ex.classes[c]) / double(std::max<int64_t>(1, ex.tokens)));
                            classes += buf;
                        }
                    for (const auto &[id, n] : ex.top)
                        top += (top.empty() ? "" : " ") + shown(ckpt.tokenizer->decode({id})) + "x" + std::to_string(n);
                    std::printf("  e%-3zu %8lld slots  %-48s %s\n", e, static_cast<long long>(ex.tokens), classes.c_str(),
                                top.c_str());
                }
            }
        }
    }
    if (json_) std::printf("%s\n", dump(out).c_str());
    return 0;
}

} // namespace cdrmix
