#include "model/describe.hpp"

#include "core/memory_tracker.hpp"

#include <cdrmix/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <map>

namespace cdrmix {

namespace {

constexpr int64_t kProbeLengths[3] = {32, 64, 128};

int64_t count(const torch::nn::Module &m) {
    int64_t n = 0;
    for (const auto &p : m.parameters()) n += p.numel();
    return n;
}

// Exact quadratic a + b T + c T^2 through three measurements.
struct Quadratic {
    double a = 0, b = 0, c = 0;
    static Quadratic fit(const double y[3]) {
        const double x0 = double(kProbeLengths[0]), x1 = double(kProbeLengths[1]), x2 = double(kProbeLengths[2]);
        const double d01 = (y[1] - y[0]) / (x1 - x0), d12 = (y[2] - y[1]) / (x2 - x1);
        Quadratic q;
        q.c = std::max(0.0, (d12 - d01) / (x2 - x0));
        q.b = d01 - q.c * (x0 + x1);
        q.a = y[0] - q.b * x0 - q.c * x0 * x0;
        return q;
    }
    double at(double t) const { return std::max(0.0, a + b * t + c * t * t); }
};

// Bytes alive after a forward pass at each probe length (batch 1), i.e. what backward would need.
template <class Forward> Quadratic measure_activations(int64_t C, Forward forward) {
    double bytes[3];
    for (int i = 0; i < 3; ++i) {
        torch::Tensor x = torch::randn({1, kProbeLengths[i], C});
        const int64_t before = MemoryTracker::live_bytes();
        torch::Tensor y = forward(x);
        bytes[i] = double(MemoryTracker::live_bytes() - before);
    }
    return Quadratic::fit(bytes);
}

std::string layer_key(const LayerSpec &l, int64_t index) {
    return (index == 0 ? "first|" : "|") + l.mixer.config.dump() + "|" + l.ffn.config.dump();
}

std::string kind_of(const Json &block) { return block.value("type", "?"); }

double bytes_per_value(const std::string &dtype) {
    if (dtype == "float32") return 4;
    if (dtype == "bfloat16" || dtype == "float16") return 2;
    throw Error("describe: --dtype must be float32, bfloat16 or float16, got '" + dtype + "'");
}

} // namespace

Json describe_model(const ModelSpec &spec, const Registry &registry, const DescribeOptions &o) {
    const double value_bytes = bytes_per_value(o.dtype);
    const int64_t T = o.seq_len > 0 ? o.seq_len : (spec.seq_length > 0 ? spec.seq_length : 1024);
    const int64_t C = spec.hidden_size;
    MemoryTracker tracker;
    torch::manual_seed(0);

    Json report = {{"name", spec.name}, {"source", spec.source}, {"hidden_size", C},
                   {"num_layers", spec.num_layers}, {"vocab_size", spec.vocab_size},
                   {"batch_size", o.batch_size}, {"seq_len", T}, {"dtype", o.dtype}};

    // Embedding, final norm and head, with the loss: logits are B*T*V values.
    int64_t total = 0, active = 0;
    double activations = 0;
    {
        OuterModules outer = OuterModules::make(spec);
        const int64_t n = count(*outer.emb) + count(*outer.ln_out) + count(*outer.head);
        total += n;
        active += n;
        report["embedding_and_head"] = n;
        Quadratic q = measure_activations(C, [&](const torch::Tensor &x) {
            torch::Tensor tokens = torch::zeros({1, x.size(1)}, torch::kInt64);
            torch::Tensor logits = outer.head(outer.ln_out(outer.emb(tokens)));
            return torch::nn::functional::cross_entropy(logits.view({-1, spec.vocab_size}), tokens.view({-1}));
        });
        activations += q.at(double(T));
    }

    // One measurement per distinct layer configuration.
    struct LayerCost {
        int64_t total = 0, active = 0, expert = 0;
        Quadratic activations;
        int64_t count = 0;
        std::string mixer, ffn;
    };
    std::map<std::string, LayerCost> kinds;
    std::vector<std::string> order;
    for (int64_t i = 0; i < spec.num_layers; ++i) {
        const LayerSpec &ls = spec.layers[static_cast<size_t>(i)];
        const std::string key = layer_key(ls, i);
        auto it = kinds.find(key);
        if (it == kinds.end()) {
            Layer layer(ls, BlockContext{C, i, spec.num_layers}, spec, registry);
            LayerCost cost;
            cost.total = count(layer);
            cost.active = cost.total - count(layer.mixer()) - count(layer.feed_forward()) +
                          layer.mixer().active_parameters() + layer.feed_forward().active_parameters();
            cost.expert = layer.feed_forward().expert_parameters();
            cost.mixer = kind_of(ls.mixer.config);
            cost.ffn = kind_of(ls.ffn.config);
            cost.activations = measure_activations(C, [&](const torch::Tensor &x) {
                ForwardContext ctx;
                return layer.forward(x, nullptr, nullptr, ctx);
            });
            it = kinds.emplace(key, cost).first;
            order.push_back(key);
        }
        LayerCost &cost = it->second;
        ++cost.count;
        total += cost.total;
        active += cost.active;
        activations += cost.activations.at(double(T));
    }

    Json layers = Json::array();
    for (const auto &key : order) {
        const LayerCost &c = kinds.at(key);
        Json l = {{"count", c.count}, {"mixer", c.mixer}, {"ffn", c.ffn}, {"parameters", c.total},
                  {"active_parameters", c.active}, {"first_layer", key.rfind("first|", 0) == 0}};
        if (c.expert > 0) l["parameters_per_expert"] = c.expert;
        layers.push_back(l);
    }
    report["layers"] = layers;
    report["parameters"] = total;
    report["active_parameters"] = active;

    const double weights = double(total) * value_bytes;
    // AdamW keeps two fp32 moments per parameter, plus an fp32 master copy when weights are 16-bit.
    const double optimizer = double(total) * (value_bytes < 4 ? 12.0 : 8.0);
    const double acts = activations * double(o.batch_size) * value_bytes / 4.0;
    report["memory_bytes"] = {{"weights", weights}, {"gradients", weights}, {"optimizer", optimizer},
                              {"activations", acts}, {"total", 2 * weights + optimizer + acts}};
    return report;
}

namespace {

std::string human_count(double n) {
    char buf[32];
    if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
    else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
    else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
    else std::snprintf(buf, sizeof buf, "%.0f", n);
    return buf;
}

std::string human_bytes(double b) {
    char buf[32];
    if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
    return buf;
}

} // namespace

std::string format_description(const Json &r) {
    std::string out;
    char line[256];
    std::snprintf(line, sizeof line, "%s (%s): %lld layers, hidden %lld, vocabulary %lld\n",
                  r["name"].get<std::string>().c_str(), r["source"].get<std::string>().c_str(),
                  static_cast<long long>(r["num_layers"]), static_cast<long long>(r["hidden_size"]),
                  static_cast<long long>(r["vocab_size"]));
    out += line;
    std::snprintf(line, sizeof line, "  parameters   %s total, %s active per token\n",
                  human_count(r["parameters"]).c_str(), human_count(r["active_parameters"]).c_str());
    out += line;
    std::snprintf(line, sizeof line, "    embedding + head  %s\n", human_count(r["embedding_and_head"]).c_str());
    out += line;
    for (const auto &l : r["layers"]) {
        std::snprintf(line, sizeof line, "    %2lld x %-16s + %-18s %s each (%s active)%s", static_cast<long long>(l["count"]),
                      l["mixer"].get<std::string>().c_str(), l["ffn"].get<std::string>().c_str(),
                      human_count(l["parameters"]).c_str(), human_count(l["active_parameters"]).c_str(),
                      l["first_layer"].get<bool>() ? " [layer 0]" : "");
        out += line;
        if (l.contains("parameters_per_expert")) {
            std::snprintf(line, sizeof line, ", %s per expert", human_count(l["parameters_per_expert"]).c_str());
            out += line;
        }
        out += "\n";
    }
    const Json &m = r["memory_bytes"];
    std::snprintf(line, sizeof line, "  memory (%s, batch %lld, sequence %lld, AdamW)\n",
                  r["dtype"].get<std::string>().c_str(), static_cast<long long>(r["batch_size"]),
                  static_cast<long long>(r["seq_len"]));
    out += line;
    for (const char *k : {"weights", "gradients", "optimizer", "activations", "total"}) {
        std::snprintf(line, sizeof line, "    %-12s %s\n", k, human_bytes(m[k]).c_str());
        out += line;
    }
    return out;
}

} // namespace cdrmix
