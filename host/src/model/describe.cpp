#include "model/describe.hpp"

#include "core/memory_tracker.hpp"

#include <cdrmix/error.hpp>
#include <cdrmix/router.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

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

// A block's routed experts, asked of its router: Block reports one expert's size
// but not how many there are. 0 for a block without experts.
int64_t routed_experts(const Block &block) {
    if (block.expert_parameters() == 0) return 0;
    for (const auto &child : block.children())
        if (auto router = std::dynamic_pointer_cast<Router>(child)) return router->num_experts();
    throw Error("describe: a block reports experts but has no router module, so their number is unknown");
}

std::string divisors_of(int64_t n) {
    std::string out;
    for (int64_t d = 1; d <= n; ++d)
        if (n % d == 0) out += (out.empty() ? "" : ", ") + std::to_string(d);
    return out;
}

// The rank layout checks that need no model: a positive world size that the
// expert-parallel groups tile exactly.
void check_ranks(const DescribeOptions &o) {
    if (o.dp < 1) throw Error("describe: --dp (ranks in total) must be at least 1, got " + std::to_string(o.dp));
    if (o.ep < 1 || o.dp % o.ep != 0)
        throw Error("describe: --ep " + std::to_string(o.ep) + " must divide --dp " + std::to_string(o.dp) +
                    ": one of " + divisors_of(o.dp));
    if (o.expert_at_a_time && o.per_rank)
        throw Error("describe: --expert-at-a-time is for a single process (the trainer refuses it with --dp, --ep and "
                    "--shard-optimizer)");
}

// Every MoE layer's experts split evenly over the ep ranks of a group.
void check_expert_split(const DescribeOptions &o, const std::vector<int64_t> &expert_counts) {
    int64_t common = o.dp;
    std::string counts;
    for (int64_t e : expert_counts) {
        common = std::gcd(common, e);
        counts += (counts.empty() ? "" : ", ") + std::to_string(e);
    }
    for (int64_t e : expert_counts)
        if (e % o.ep != 0)
            throw Error("describe: --ep " + std::to_string(o.ep) + " does not divide the MoE layers' expert counts (" +
                        counts + "); with --dp " + std::to_string(o.dp) + ", --ep must be one of " +
                        divisors_of(common));
}

// The report's memory fields, in print order; "total" is the sum of the others.
constexpr const char *kMemoryFields[] = {"weights", "gradients", "optimizer", "activations", "total"};

// What one rank holds with dp ranks, experts split over ep of them and, under
// ZeRO-1, AdamW state divided over its replicas (dense parameters are on all dp
// ranks, one expert shard on dp/ep). A single process is dp 1, ep 1, unsharded.
// `frozen`: routed-expert parameters with neither gradients nor AdamW state
// (expert-at-a-time training; single process).
Json memory_of(int64_t dense, int64_t expert, double value_bytes, double optimizer_bytes, double activations,
               int64_t dp, int64_t ep, bool shard_optimizer, int64_t frozen = 0) {
    const double expert_held = double(expert) / double(ep);
    const double dense_replicas = shard_optimizer ? double(dp) : 1.0;
    const double expert_replicas = shard_optimizer ? double(dp / ep) : 1.0;
    const double weights = (double(dense) + expert_held) * value_bytes;
    const double optimizer =
        (double(dense) / dense_replicas + expert_held / expert_replicas - double(frozen)) * optimizer_bytes;
    // Gradients follow the weights held (and trained).
    const double gradients = weights - double(frozen) * value_bytes;
    const double values[] = {weights, gradients, optimizer, activations, weights + gradients + optimizer + activations};
    Json m;
    for (size_t i = 0; i < std::size(kMemoryFields); ++i) m[kMemoryFields[i]] = values[i];
    return m;
}

std::string human_bytes(double b);

// The memory figures a budget is held against: per rank when the report has them.
const Json &budget_memory(const Json &report) {
    return report.contains("per_rank") ? report["per_rank"]["memory_bytes"] : report["memory_bytes"];
}

// Whether the total fits in `budget` bytes and, when not, what would: a
// checkpointing mode, the largest batch (activations grow linearly with it), or
// nothing at this size when the weights, gradients and AdamW state alone exceed it.
Json budget_verdict(const Json &report, double budget) {
    const Json &m = budget_memory(report);
    const double fixed = double(m["weights"]) + double(m["gradients"]) + double(m["optimizer"]);
    const double total = m["total"];
    const int64_t batch = report["batch_size"];
    const std::string mode = report["checkpoint_activations"];
    Json v = {{"bytes", budget}, {"fits", total <= budget}, {"suggestions", Json::array()}};
    if (total <= budget) return v;
    Json &advice = v["suggestions"];
    if (fixed >= budget) {
        advice.push_back("does not fit at any batch: the weights, gradients and AdamW state alone take " +
                         human_bytes(fixed) + "; a smaller preset, or AdamW's state sharded over ranks (--dp N --shard-optimizer)");
        return v;
    }
    const int64_t k = report["checkpoint_activations_every"];
    for (const char *name : {"every_k", "all"}) {
        const double with = fixed + double(report["activations_by_checkpointing"][name]);
        if (name != mode && double(report["activations_by_checkpointing"][name]) < double(m["activations"]) &&
            with <= budget)
            advice.push_back(std::string("fits with train.checkpoint_activations = \"") + name + "\"" +
                             (std::string(name) == "every_k"
                                  ? " and checkpoint_activations_every = " + std::to_string(k)
                                  : std::string()) +
                             " (total " + human_bytes(with) + ")");
    }
    // The largest batch in the present mode and, unless that is it, with every layer checkpointed.
    std::vector<std::string> batch_modes{mode};
    if (mode != "all") batch_modes.push_back("all");
    for (const auto &name : batch_modes) {
        const double per_sequence = double(report["activations_by_checkpointing"][name]) / double(batch);
        const auto fits = static_cast<int64_t>(std::floor((budget - fixed) / per_sequence));
        if (fits >= 1 && fits < batch)
            advice.push_back("fits with --batch-size " + std::to_string(fits) +
                             (name == mode ? std::string() : " and train.checkpoint_activations = \"all\"") +
                             " (total " + human_bytes(fixed + per_sequence * double(fits)) + ")");
    }
    if (advice.empty())
        advice.push_back("does not fit at batch 1 even with every layer checkpointed: a shorter --seq-len than " +
                         std::to_string(int64_t(report["seq_len"])) + " or a smaller preset");
    return v;
}

} // namespace

double parse_byte_size(const std::string &text, const std::string &what) {
    static const std::pair<const char *, double> units[] = {
        {"", 1},         {"B", 1},         {"KiB", 1024.0},  {"MiB", 1024.0 * 1024},   {"GiB", 1024.0 * 1024 * 1024},
        {"TiB", 1024.0 * 1024 * 1024 * 1024}, {"KB", 1e3},   {"MB", 1e6},              {"GB", 1e9},
        {"TB", 1e12}};
    const auto fail = [&] {
        return Error(what + ": '" + text +
                     "' is not a size: a positive number and a unit, e.g. 18GiB (KiB, MiB, GiB, TiB; KB, MB, GB, TB; B)");
    };
    size_t used = 0;
    double number = 0;
    try {
        number = std::stod(text, &used);
    } catch (const std::exception &) {
        throw fail();
    }
    size_t start = used;
    while (start < text.size() && text[start] == ' ') ++start;
    const std::string unit = text.substr(start);
    if (!std::isfinite(number) || number <= 0 || text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])))
        throw fail();
    for (const auto &[name, scale] : units)
        if (unit == name) return number * scale;
    throw fail();
}

Json describe_model(const ModelSpec &spec, const Registry &registry, const DescribeOptions &o) {
    check_ranks(o);
    const double value_bytes = bytes_per_value(o.dtype);
    const int64_t T = o.seq_len > 0 ? o.seq_len : (spec.seq_length > 0 ? spec.seq_length : 1024);
    const int64_t C = spec.hidden_size;
    MemoryTracker tracker;
    torch::manual_seed(0);

    Json report = {{"name", spec.name}, {"source", spec.source}, {"hidden_size", C},
                   {"num_layers", spec.num_layers}, {"vocab_size", spec.vocab_size},
                   {"batch_size", o.batch_size}, {"seq_len", T}, {"dtype", o.dtype}};

    // AdamW keeps two fp32 moments per parameter, plus an fp32 master copy when weights are 16-bit.
    const double optimizer_bytes = value_bytes < 4 ? 12.0 : 8.0;
    // Weights, gradients and AdamW state of what has been counted so far, against the budget.
    std::map<std::string, int64_t> layers_of_kind;
    for (int64_t i = 0; i < spec.num_layers; ++i) ++layers_of_kind[layer_key(spec.layers[static_cast<size_t>(i)], i)];
    // Expert at a time: which parameters train is known at the end, so only the weights count here.
    const double bytes_per_parameter = o.expert_at_a_time ? value_bytes : 2 * value_bytes + optimizer_bytes;
    const auto over_budget = [&](double parameters) {
        return o.stop_when_over_budget && o.budget_bytes > 0 && parameters * bytes_per_parameter > o.budget_bytes;
    };
    const Json gave_up = {{"name", spec.name}, {"budget", {{"bytes", o.budget_bytes}, {"fits", false}}}};
    double counted = 0; // parameters, every layer of each kind built so far

    // Embedding, final norm and head, with the loss: logits are B*T*V values.
    int64_t total = 0, active = 0;
    double activations = 0;
    {
        OuterModules outer = OuterModules::make(spec);
        const int64_t n = count(*outer.emb) + count(*outer.ln_out) + count(*outer.head);
        total += n;
        active += n;
        report["embedding_and_head"] = n;
        counted += double(n);
        if (over_budget(counted)) return gave_up;
        Quadratic q = measure_activations(C, [&](const torch::Tensor &x) {
            torch::Tensor tokens = torch::zeros({1, x.size(1)}, torch::kInt64);
            torch::Tensor logits = outer.head(outer.ln_out(outer.emb(tokens)));
            return torch::nn::functional::cross_entropy(logits.view({-1, spec.vocab_size}), tokens.view({-1}));
        });
        activations += q.at(double(T));
    }

    // One measurement per distinct layer configuration, plain and checkpointed.
    struct LayerCost {
        int64_t total = 0, active = 0, expert = 0, experts = 0; // expert: one routed expert's parameters
        Quadratic activations, checkpointed;
        int64_t count = 0;
        std::string mixer, ffn;
    };
    std::map<std::string, LayerCost> kinds;
    std::vector<std::string> order, key_of_layer;
    for (int64_t i = 0; i < spec.num_layers; ++i) {
        const LayerSpec &ls = spec.layers[static_cast<size_t>(i)];
        const std::string key = layer_key(ls, i);
        auto it = kinds.find(key);
        if (it == kinds.end()) {
            auto layer = std::make_shared<Layer>(ls, BlockContext{C, i, spec.num_layers}, spec, registry);
            LayerCost cost;
            cost.total = count(*layer);
            cost.active = cost.total - count(layer->mixer()) - count(layer->feed_forward()) +
                          layer->mixer().active_parameters() + layer->feed_forward().active_parameters();
            cost.expert = layer->feed_forward().expert_parameters();
            cost.experts = routed_experts(layer->feed_forward());
            cost.mixer = kind_of(ls.mixer.config);
            cost.ffn = kind_of(ls.ffn.config);
            counted += double(cost.total) * double(layers_of_kind.at(key));
            if (over_budget(counted)) return gave_up;
            cost.activations = measure_activations(C, [&](const torch::Tensor &x) {
                ForwardContext ctx;
                return layer->forward(x, nullptr, nullptr, ctx);
            });
            cost.checkpointed = measure_activations(C, [&](const torch::Tensor &x) {
                ForwardContext ctx;
                ctx.layer = i;
                return checkpointed_layer_forward(layer, x, ctx);
            });
            it = kinds.emplace(key, cost).first;
            order.push_back(key);
        }
        LayerCost &cost = it->second;
        ++cost.count;
        total += cost.total;
        active += cost.active;
        key_of_layer.push_back(key);
    }
    // Batch-1 activations under a checkpointing mode: the larger of what the
    // forward pass leaves (checkpointed layers their outputs, the others
    // everything) and, while backward recomputes checkpointed layer i, what
    // layers up to i keep plus i's whole activations (the later layers' are freed by then).
    auto activations_with = [&](const ActivationCheckpointing &mode) {
        double kept = activations, recomputing = 0;
        for (int64_t i = 0; i < spec.num_layers; ++i) {
            const LayerCost &c = kinds.at(key_of_layer[static_cast<size_t>(i)]);
            if (mode.applies(i)) {
                kept += c.checkpointed.at(double(T));
                recomputing = std::max(recomputing, kept + c.activations.at(double(T)));
            } else {
                kept += c.activations.at(double(T));
            }
        }
        return std::max(kept, recomputing);
    };

    Json layers = Json::array();
    int64_t expert_total = 0, expert_one = 0; // expert_one: one routed expert of each MoE layer
    std::vector<int64_t> expert_counts;
    for (const auto &key : order) {
        const LayerCost &c = kinds.at(key);
        Json l = {{"count", c.count}, {"mixer", c.mixer}, {"ffn", c.ffn}, {"parameters", c.total},
                  {"active_parameters", c.active}, {"first_layer", key.rfind("first|", 0) == 0}};
        if (c.expert > 0) {
            l["parameters_per_expert"] = c.expert;
            l["experts"] = c.experts;
            expert_total += c.count * c.experts * c.expert;
            expert_one += c.count * c.expert;
            expert_counts.push_back(c.experts);
        }
        layers.push_back(l);
    }
    check_expert_split(o, expert_counts);
    report["layers"] = layers;
    report["parameters"] = total;
    report["active_parameters"] = active;
    // Routed experts only: shared experts, routers and the rest are dense (replicated on every rank).
    report["expert_parameters"] = expert_total;

    // The batch is per rank, so activations are the same for one process and for each rank; with expert
    // parallelism a rank's experts receive as many tokens on average as its own experts would.
    const double per_sequence = value_bytes / 4.0; // measured in float32
    const double acts = activations_with(o.checkpointing) * double(o.batch_size) * per_sequence;
    ActivationCheckpointing every_k = o.checkpointing;
    if (every_k.mode != ActivationCheckpointing::Mode::EveryK) every_k = {ActivationCheckpointing::Mode::EveryK, 2};
    const ActivationCheckpointing modes[] = {{}, every_k, {ActivationCheckpointing::Mode::All, 1}};
    report["checkpoint_activations"] = o.checkpointing.name();
    report["checkpoint_activations_every"] = every_k.every;
    Json by_mode;
    for (const auto &m : modes)
        by_mode[m.name()] = activations_with(m) * double(o.batch_size) * per_sequence;
    report["activations_by_checkpointing"] = by_mode;
    const int64_t dense = total - expert_total;
    if (o.expert_at_a_time && expert_total == 0)
        throw Error("describe: --expert-at-a-time: the model has no MoE layer with routed experts");
    report["expert_at_a_time"] = o.expert_at_a_time;
    report["memory_bytes"] = memory_of(dense, expert_total, value_bytes, optimizer_bytes, acts, 1, 1, false,
                                       o.expert_at_a_time ? expert_total - expert_one : 0);
    if (o.per_rank)
        report["per_rank"] = {
            {"data_parallel", o.dp},
            {"expert_parallel", o.ep},
            {"shard_optimizer", o.shard_optimizer},
            {"parameters", dense + expert_total / o.ep},
            {"memory_bytes", memory_of(dense, expert_total, value_bytes, optimizer_bytes, acts, o.dp, o.ep,
                                       o.shard_optimizer)}};
    if (o.budget_bytes > 0) report["budget"] = budget_verdict(report, o.budget_bytes);
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

// The per-rank assumptions, spelled out under the table.
std::string describe_layout(const Json &r) {
    const Json &p = r["per_rank"];
    const long long dp = p["data_parallel"], ep = p["expert_parallel"];
    const double expert = r["expert_parameters"], dense = double(r["parameters"]) - expert;
    char line[256];
    std::string out;
    std::snprintf(line, sizeof line,
                  "  per rank: %lld ranks; dense %s replicated on each, routed experts %s split over %lld "
                  "(%s per rank)\n",
                  dp, human_count(dense).c_str(), human_count(expert).c_str(), ep,
                  human_count(expert / double(ep)).c_str());
    out += line;
    if (p["shard_optimizer"])
        std::snprintf(line, sizeof line,
                      "            AdamW state sharded over replicas (ZeRO-1): dense over %lld ranks, each expert "
                      "shard over %lld (dp/ep)\n",
                      dp, dp / ep);
    else
        std::snprintf(line, sizeof line,
                      "            AdamW state follows the parameters held (--shard-optimizer: ZeRO-1)\n");
    out += line;
    out += "            activations at the same batch per rank; all-to-all send/receive buffers not counted\n";
    return out;
}

std::string describe_per_rank(const Json &r) {
    std::string out;
    char line[256];
    const Json &m = r["memory_bytes"];
    const Json &p = r["per_rank"];
    const Json &pm = p["memory_bytes"];
    std::snprintf(line, sizeof line, "    %-12s %14s %12s\n", "", "single process", "per rank");
    out += line;
    for (const char *k : kMemoryFields) {
        std::snprintf(line, sizeof line, "    %-12s %14s %12s\n", k, human_bytes(m[k]).c_str(),
                      human_bytes(pm[k]).c_str());
        out += line;
    }
    out += describe_layout(r);
    const long long dp = p["data_parallel"], ep = p["expert_parallel"];
    const bool zero = p["shard_optimizer"];
    std::snprintf(line, sizeof line, "  per rank (dp %lld, ep %lld%s): %s (single process: %s)\n", dp, ep,
                  zero ? ", ZeRO-1" : "", human_bytes(pm["total"]).c_str(), human_bytes(m["total"]).c_str());
    out += line;
    return out;
}

std::string describe_budget(const Json &r) {
    const Json &b = r["budget"];
    const Json &m = budget_memory(r);
    std::string out = "  budget " + human_bytes(b["bytes"]) + ": " +
                      (b["fits"].get<bool>() ? "fits (" : "does not fit (") + human_bytes(m["total"]) + " needed" +
                      (r.contains("per_rank") ? " per rank" : "") + ")\n";
    for (const auto &s : b["suggestions"]) out += "    " + s.get<std::string>() + "\n";
    if (b.contains("presets_that_fit")) {
        std::string list;
        for (const auto &p : b["presets_that_fit"])
            list += (list.empty() ? "" : ", ") + p["preset"].get<std::string>() + " (" + human_bytes(p["total_bytes"]) + ")";
        out += list.empty() ? "    no other preset fits at this batch and length\n"
                            : "    presets that fit at this batch and length with every layer checkpointed: " + list + "\n";
    }
    return out;
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
    std::snprintf(line, sizeof line, "  parameters   %s total (%s in routed experts), %s active per token\n",
                  human_count(r["parameters"]).c_str(), human_count(r["expert_parameters"]).c_str(),
                  human_count(r["active_parameters"]).c_str());
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
            std::snprintf(line, sizeof line, ", %lld experts of %s", static_cast<long long>(l["experts"]),
                          human_count(l["parameters_per_expert"]).c_str());
            out += line;
        }
        out += "\n";
    }
    const Json &m = r["memory_bytes"];
    const std::string checkpointing = r["checkpoint_activations"];
    std::snprintf(line, sizeof line, "  memory (%s, batch %lld, sequence %lld, AdamW%s, checkpoint_activations %s)\n",
                  r["dtype"].get<std::string>().c_str(), static_cast<long long>(r["batch_size"]),
                  static_cast<long long>(r["seq_len"]),
                  r.value("expert_at_a_time", false) ? " for one expert per MoE layer (expert at a time)" : "",
                  checkpointing.c_str());
    out += line;
    if (!r.contains("per_rank")) {
        for (const char *k : kMemoryFields) {
            std::snprintf(line, sizeof line, "    %-12s %s\n", k, human_bytes(m[k]).c_str());
            out += line;
        }
    } else {
        out += describe_per_rank(r);
    }
    const Json &by = r["activations_by_checkpointing"];
    std::snprintf(line, sizeof line, "  activations by checkpoint_activations: none %s, every_k (k = %lld) %s, all %s\n",
                  human_bytes(by["none"]).c_str(), static_cast<long long>(r["checkpoint_activations_every"]),
                  human_bytes(by["every_k"]).c_str(), human_bytes(by["all"]).c_str());
    out += line;
    if (r.contains("budget")) out += describe_budget(r);
    return out;
}

} // namespace cdrmix
