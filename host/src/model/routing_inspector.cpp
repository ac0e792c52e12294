#include "model/routing_inspector.hpp"

#include <cdrmix/data_source.hpp>
#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cctype>

namespace cdrmix {

namespace {

// Eval mode and no gradients for the span of a call; the caller's mode after.
class Inspecting {
public:
    explicit Inspecting(Model &m) : model_(m), was_training_(m.is_training()) { model_.eval(); }
    ~Inspecting() { model_.train(was_training_); }

private:
    Model &model_;
    bool was_training_;
    torch::NoGradGuard no_grad_;
};

std::vector<RoutingRecord> forward_recording(Model &model, const torch::Tensor &tokens) {
    ForwardContext ctx;
    ctx.record_routing = true;
    model.forward(tokens, nullptr, ctx);
    if (ctx.routing.empty()) throw Error("inspect: the model '" + model.spec().name + "' has no MoE layer to inspect");
    return std::move(ctx.routing);
}

} // namespace

TextRouting route_text(Model &model, const Tokenizer &tokenizer, const std::string &text) {
    const std::vector<int64_t> ids = tokenizer.encode(text);
    if (ids.empty()) throw Error("inspect: the text encodes to no tokens");
    Inspecting mode(model);
    const torch::Tensor tokens = torch::tensor(ids, torch::kInt64).view({1, -1});
    const auto records = forward_recording(model, tokens);
    TextRouting out;
    out.num_experts = records.front().num_experts;
    for (size_t i = 0; i < ids.size(); ++i) out.tokens.push_back({ids[i], tokenizer.decode({ids[i]}), {}});
    for (const auto &rec : records) {
        out.layers.push_back(rec.layer);
        const torch::Tensor idx = rec.indices.to(torch::kCPU), probs = rec.probs.to(torch::kCPU, torch::kFloat64);
        const auto I = idx.accessor<int64_t, 2>();
        const auto P = probs.accessor<double, 2>();
        for (size_t t = 0; t < ids.size(); ++t) {
            std::vector<ExpertChoice> chosen;
            for (int64_t s = 0; s < idx.size(1); ++s)
                if (I[t][s] >= 0) chosen.push_back({I[t][s], P[t][I[t][s]]});
            out.tokens[t].layers.push_back(std::move(chosen));
        }
    }
    return out;
}

Json to_json(const TextRouting &r) {
    Json tokens = Json::array();
    for (const auto &t : r.tokens) {
        Json layers = Json::array();
        for (const auto &choices : t.layers) {
            Json c = Json::array();
            for (const auto &e : choices) c.push_back({{"expert", e.expert}, {"prob", e.prob}});
            layers.push_back(std::move(c));
        }
        tokens.push_back({{"id", t.id}, {"text", t.text}, {"layers", std::move(layers)}});
    }
    return {{"moe_layers", r.layers}, {"num_experts", r.num_experts}, {"tokens", std::move(tokens)}};
}

TokenClass token_class(const std::string &text) {
    if (text.empty()) return TokenClass::Other;
    const auto c = static_cast<unsigned char>(text[0]);
    if (c >= 0x80) return TokenClass::Letter; // a multi-byte UTF-8 character: letters of most scripts
    if (std::isalpha(c)) return TokenClass::Letter;
    if (std::isdigit(c)) return TokenClass::Digit;
    if (std::isspace(c)) return TokenClass::Space;
    if (std::ispunct(c)) return TokenClass::Punctuation;
    return TokenClass::Other;
}

ExpertSpecialisation::ExpertSpecialisation(int64_t vocab_size) : V_(vocab_size) {
    if (V_ <= 0) throw Error("inspect: a vocabulary of " + std::to_string(V_) + " tokens");
}

void ExpertSpecialisation::add(const at::Tensor &tokens, const std::vector<RoutingRecord> &records) {
    const torch::Tensor ids = tokens.reshape({-1}).to(torch::kCPU, torch::kInt64);
    for (size_t i = 0; i < records.size(); ++i) {
        const auto &rec = records[i];
        if (i >= layers_.size()) {
            // Counts per (expert, token): bounded, since a vocabulary and an expert count are each bounded by the model.
            if (rec.num_experts <= 0 || rec.num_experts > (int64_t(1) << 32) / V_)
                throw Error("inspect: " + std::to_string(rec.num_experts) + " experts x " + std::to_string(V_) +
                            " tokens is too many counts");
            layers_.push_back(rec.layer);
            experts_.push_back(rec.num_experts);
            counts_.push_back(torch::zeros({rec.num_experts * V_}, torch::kInt64));
        }
        TORCH_CHECK(layers_[i] == rec.layer && rec.num_experts == experts_[i], "inspect: records of another model");
        const torch::Tensor idx = rec.indices.to(torch::kCPU);
        const torch::Tensor filled = idx.ge(0);
        // One count per filled slot at (expert, token): a bincount over expert * V + token.
        const torch::Tensor keys = (idx * V_ + ids.unsqueeze(1).expand_as(idx)).masked_select(filled);
        counts_[i] += torch::bincount(keys, {}, experts_[i] * V_);
    }
}

void ExpertSpecialisation::add_split(Model &model, DataSource &data, Split split, int64_t batches, int64_t batch_size,
                                     int64_t seq_len) {
    Inspecting mode(model);
    data.reset(split);
    for (int64_t b = 0; b < batches; ++b) {
        const torch::Tensor batch = data.next_batch(split, batch_size, seq_len).slice(1, 0, seq_len);
        add(batch, forward_recording(model, batch));
    }
}

std::vector<ExpertSpecialisation::Layer> ExpertSpecialisation::summary(const Tokenizer &tokenizer, int64_t top_n) const {
    std::vector<Layer> out;
    for (size_t i = 0; i < layers_.size(); ++i) {
        const int64_t E = experts_[i];
        const torch::Tensor counts = counts_[i].view({E, V_});
        Layer layer{layers_[i], {}};
        for (int64_t e = 0; e < E; ++e) {
            const torch::Tensor row = counts[e];
            Expert ex;
            ex.tokens = row.sum().item<int64_t>();
            const torch::Tensor nz = row.nonzero().view({-1});
            const auto C = row.accessor<int64_t, 1>();
            for (int64_t j = 0; j < nz.size(0); ++j) {
                const int64_t id = nz[j].item<int64_t>();
                ex.classes[static_cast<size_t>(token_class(tokenizer.decode({id})))] += C[id];
                ex.top.emplace_back(id, C[id]);
            }
            std::stable_sort(ex.top.begin(), ex.top.end(), [](const auto &a, const auto &b) { return a.second > b.second; });
            if (static_cast<int64_t>(ex.top.size()) > top_n) ex.top.resize(static_cast<size_t>(top_n));
            layer.experts.push_back(std::move(ex));
        }
        out.push_back(std::move(layer));
    }
    return out;
}

Json ExpertSpecialisation::to_json(const std::vector<Layer> &layers, const Tokenizer &tokenizer) {
    Json out = Json::array();
    for (const auto &l : layers) {
        Json experts = Json::array();
        for (size_t e = 0; e < l.experts.size(); ++e) {
            const auto &ex = l.experts[e];
            Json top = Json::array();
            for (const auto &[id, n] : ex.top) top.push_back({{"id", id}, {"text", tokenizer.decode({id})}, {"count", n}});
            Json classes = Json::object();
            for (size_t c = 0; c < kTokenClassNames.size(); ++c) classes[kTokenClassNames[c]] = ex.classes[c];
            experts.push_back({{"expert", e}, {"tokens", ex.tokens}, {"top", top}, {"classes", classes}});
        }
        out.push_back({{"layer", l.layer}, {"experts", experts}});
    }
    return out;
}

} // namespace cdrmix
