#include "data/inspection.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace cdrmix::ui {

namespace {

const nlohmann::json &field(const nlohmann::json &j, const char *key, const char *where) {
    auto it = j.find(key);
    if (it == j.end()) throw std::runtime_error(std::string("inspection: ") + where + " has no '" + key + "'");
    return *it;
}

int64_t integer(const nlohmann::json &j, const char *what) {
    if (!j.is_number_integer()) throw std::runtime_error(std::string("inspection: ") + what + " is not an integer");
    return j.get<int64_t>();
}

} // namespace

Inspection parse_inspection(const nlohmann::json &routing) {
    if (!routing.is_object()) throw std::runtime_error("inspection: not a JSON object");
    Inspection r;
    for (const auto &l : field(routing, "moe_layers", "the routing")) r.layers.push_back(integer(l, "a MoE layer index"));
    if (r.layers.empty()) throw std::runtime_error("inspection: the routing names no MoE layer");
    r.num_experts = integer(field(routing, "num_experts", "the routing"), "num_experts");
    for (const auto &t : field(routing, "tokens", "the routing")) {
        InspectedToken tok;
        tok.id = integer(field(t, "id", "a token"), "a token id");
        const auto &text = field(t, "text", "a token");
        if (!text.is_string()) throw std::runtime_error("inspection: a token's text is not a string");
        tok.text = text.get<std::string>();
        const auto &layers = field(t, "layers", "a token");
        if (!layers.is_array() || layers.size() != r.layers.size())
            throw std::runtime_error("inspection: token '" + tok.text + "' has routing for " + std::to_string(layers.size()) +
                                     " layers, not " + std::to_string(r.layers.size()));
        for (const auto &choices : layers) {
            std::vector<InspectedChoice> slots;
            for (const auto &c : choices) {
                InspectedChoice choice{integer(field(c, "expert", "a choice"), "an expert"), 0.0};
                const auto &p = field(c, "prob", "a choice");
                if (!p.is_number()) throw std::runtime_error("inspection: a choice's prob is not a number");
                choice.prob = p.get<double>();
                if (choice.expert < 0 || choice.expert >= r.num_experts)
                    throw std::runtime_error("inspection: expert " + std::to_string(choice.expert) + " of " +
                                             std::to_string(r.num_experts));
                slots.push_back(choice);
            }
            tok.layers.push_back(std::move(slots));
        }
        r.tokens.push_back(std::move(tok));
    }
    return r;
}

Specialisation parse_specialisation(const nlohmann::json &j) {
    if (!j.is_object()) throw std::runtime_error("inspection: the specialisation is not a JSON object");
    Specialisation s;
    const auto &split = field(j, "split", "the specialisation");
    if (!split.is_string()) throw std::runtime_error("inspection: the specialisation's split is not a string");
    s.split = split.get<std::string>();
    s.tokens = integer(field(j, "tokens", "the specialisation"), "the specialisation's tokens");
    if (j.contains("step")) s.step = integer(j["step"], "the specialisation's step");
    for (const auto &l : field(j, "layers", "the specialisation")) {
        LayerProfile layer;
        layer.layer = integer(field(l, "layer", "a layer"), "a layer index");
        for (const auto &e : field(l, "experts", "a layer")) {
            if (integer(field(e, "expert", "an expert"), "an expert index") != static_cast<int64_t>(layer.experts.size()))
                throw std::runtime_error("inspection: layer " + std::to_string(layer.layer) + " lists its experts out of order");
            ExpertProfile p;
            p.slots = integer(field(e, "tokens", "an expert"), "an expert's tokens");
            const auto &classes = field(e, "classes", "an expert");
            if (!classes.is_object()) throw std::runtime_error("inspection: an expert's classes are not an object");
            for (const auto &[name, n] : classes.items()) {
                p.classes.emplace_back(name, integer(n, "a class count"));
                if (std::find(s.classes.begin(), s.classes.end(), name) == s.classes.end()) s.classes.push_back(name);
            }
            std::stable_sort(p.classes.begin(), p.classes.end(), [](const auto &a, const auto &b) { return a.second > b.second; });
            for (const auto &t : field(e, "top", "an expert")) {
                const auto &text = field(t, "text", "a top token");
                if (!text.is_string()) throw std::runtime_error("inspection: a top token's text is not a string");
                p.top.emplace_back(text.get<std::string>(), integer(field(t, "count", "a top token"), "a top token's count"));
            }
            layer.experts.push_back(std::move(p));
        }
        s.layers.push_back(std::move(layer));
    }
    if (s.layers.empty()) throw std::runtime_error("inspection: the specialisation names no MoE layer");
    std::sort(s.classes.begin(), s.classes.end());
    return s;
}

size_t Specialisation::class_index(const std::string &name) const {
    return static_cast<size_t>(std::find(classes.begin(), classes.end(), name) - classes.begin());
}

int64_t LayerProfile::slots() const {
    int64_t n = 0;
    for (const auto &e : experts) n += e.slots;
    return n;
}

int64_t Inspection::top_expert(size_t token, size_t layer) const {
    const auto &slots = tokens.at(token).layers.at(layer);
    if (slots.empty()) return -1;
    return std::max_element(slots.begin(), slots.end(), [](const auto &a, const auto &b) { return a.prob < b.prob; })->expert;
}

std::vector<std::pair<std::string, int64_t>> Inspection::expert_tokens(size_t layer, int64_t expert) const {
    std::vector<std::pair<std::string, int64_t>> out;
    std::map<int64_t, size_t> at; // token id -> its row in out, in order of first appearance
    for (const auto &t : tokens)
        for (const auto &c : t.layers.at(layer))
            if (c.expert == expert) {
                auto [it, fresh] = at.emplace(t.id, out.size());
                if (fresh) out.emplace_back(t.text, 0);
                ++out[it->second].second;
            }
    std::stable_sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.second > b.second; });
    return out;
}

std::string visible_token(const std::string &text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == ' ') out += "\xC2\xB7"; // a middle dot, so a space-only token is visible
        else out += c;
    }
    return out;
}

} // namespace cdrmix::ui
