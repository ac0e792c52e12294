// Mix data source: several sources with weights. Every batch row is drawn from
// one member, picked by weight with a counter-based generator, so
//  - a batch mixes the sources (each step's gradient sees them all, not one
//    source per step), and shares converge at the rate of rows, not batches;
//  - the member of the n-th row of a split is a pure function of (seed, split,
//    n): the sampler's whole state is one row counter per split, which the
//    position saves next to every member's own position.
// Members must share one tokenizer: ids would otherwise mean different text.
// When a member masks its loss (cdrmix/loss_mask.hpp, the `chat` source), the
// mixture hands on a mask for every batch: the member's for its rows, all ones
// for rows of members without one.
#include <cdrmix/data_mixture.hpp>
#include <cdrmix/loss_mask.hpp>
#include <cdrmix/sdk.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace {

using cdrmix::Config;
using cdrmix::Error;
using cdrmix::Json;
using cdrmix::Split;

// splitmix64: the row -> uniform draw, independent between nearby counters.
uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct Member {
    std::string name, type;
    double weight = 0;     // normalised
    double cumulative = 0; // upper end of its interval in [0, 1)
    std::shared_ptr<cdrmix::DataSource> source;
    int64_t train_rows = 0;
};

// "3 x 65", or the dimensions joined by " x " for a tensor of another rank.
std::string shape(const at::Tensor &t) {
    std::string s;
    for (int64_t d : t.sizes()) s += (s.empty() ? "" : " x ") + std::to_string(d);
    return s;
}

std::string describe_tokenizer(const cdrmix::Tokenizer &t) {
    return t.kind() + ", " + std::to_string(t.vocab_size()) + " tokens";
}

class MixSource final : public cdrmix::DataSource, public cdrmix::DataMixture, public cdrmix::LossMaskSource {
public:
    MixSource(std::vector<Member> members, uint64_t seed, std::string where)
        : members_(std::move(members)), seed_(seed), where_(std::move(where)) {}

    at::Tensor next_batch(Split split, int64_t batch, int64_t seq_len) override {
        if (batch <= 0 || seq_len <= 0) throw Error(where_ + ": batch and seq_len must be positive");
        int64_t &row = split == Split::Train ? train_row_ : val_row_;
        std::vector<size_t> pick(static_cast<size_t>(batch));
        std::vector<int64_t> count(members_.size(), 0);
        for (auto &p : pick) {
            p = member_of(split, row++);
            ++count[p];
        }
        std::vector<at::Tensor> parts(members_.size());
        for (size_t m = 0; m < members_.size(); ++m) {
            if (count[m] == 0) continue;
            parts[m] = members_[m].source->next_batch(split, count[m], seq_len);
            if (parts[m].dim() != 2 || parts[m].size(0) != count[m] || parts[m].size(1) != seq_len + 1)
                throw Error(where_ + ": source '" + members_[m].name + "' returned a batch of " + shape(parts[m]) +
                            " tokens where the mix needs " + std::to_string(count[m]) + " x " +
                            std::to_string(seq_len + 1) + " (rows of seq_len + 1 from every member; a chat member "
                            "with packing = \"bucket\" gives shorter ones)");
            if (split == Split::Train) members_[m].train_rows += count[m];
        }
        // Rows in the order drawn, each member's rows in the order it gave them.
        std::vector<at::Tensor> rows;
        rows.reserve(pick.size());
        std::vector<int64_t> taken(members_.size(), 0);
        for (size_t p : pick) rows.push_back(parts[p][taken[p]++]);
        last_mask_ = gather_masks(pick, count, seq_len);
        return torch::stack(rows);
    }

    at::Tensor last_mask() const override { return last_mask_; }

    std::shared_ptr<cdrmix::Tokenizer> tokenizer() const override { return members_.front().source->tokenizer(); }

    int64_t num_tokens(Split split) const override {
        int64_t total = 0;
        for (const auto &m : members_) {
            const int64_t n = m.source->num_tokens(split);
            if (n < 0) return -1;
            total += n;
        }
        return total;
    }

    void reset(Split split) override {
        for (auto &m : members_) {
            m.source->reset(split);
            if (split == Split::Train) m.train_rows = 0;
        }
        (split == Split::Train ? train_row_ : val_row_) = 0;
    }

    Json position() const override {
        Json members = Json::array();
        for (const auto &m : members_)
            members.push_back({{"name", m.name}, {"train_rows", m.train_rows}, {"position", m.source->position()}});
        return {{"source", "mix"}, {"train_rows", train_row_}, {"val_rows", val_row_}, {"members", members}};
    }

    void restore(const Json &p) override {
        if (!p.is_object() || p.value("source", "") != "mix")
            throw Error(where_ + ": the saved data position is not a mix source's: " + p.dump().substr(0, 200));
        const Json &saved = p.at("members");
        if (!saved.is_array() || saved.size() != members_.size())
            throw Error(where_ + ": the saved position has " + std::to_string(saved.is_array() ? saved.size() : 0) +
                        " sources, this mix has " + std::to_string(members_.size()));
        for (size_t i = 0; i < members_.size(); ++i)
            if (saved[i].value("name", "") != members_[i].name)
                throw Error(where_ + ": saved source " + std::to_string(i) + " is '" + saved[i].value("name", "") +
                            "', this mix's is '" + members_[i].name + "'");
        for (size_t i = 0; i < members_.size(); ++i) {
            members_[i].source->restore(saved[i].at("position"));
            members_[i].train_rows = saved[i].at("train_rows").get<int64_t>();
        }
        train_row_ = p.at("train_rows").get<int64_t>();
        val_row_ = p.at("val_rows").get<int64_t>();
    }

    std::string describe() const override {
        std::string s = "mix of " + std::to_string(members_.size()) + " sources:";
        for (const auto &m : members_) {
            char w[32];
            std::snprintf(w, sizeof w, "%.3f", m.weight);
            s += " [" + m.name + " " + w + ": " + m.source->describe() + "]";
        }
        return s;
    }

    std::vector<cdrmix::MixMemberInfo> members() const override {
        std::vector<cdrmix::MixMemberInfo> out;
        for (const auto &m : members_) out.push_back({m.name, m.weight, m.train_rows});
        return out;
    }

    cdrmix::DataSource &member(size_t i) override { return *members_.at(i).source; }

private:
    size_t member_of(Split split, int64_t row) const {
        const uint64_t salt = split == Split::Train ? 0 : 0x5bd1e995ULL;
        const double u = double(mix64(mix64(seed_ ^ salt) + static_cast<uint64_t>(row)) >> 11) * 0x1.0p-53;
        for (size_t m = 0; m + 1 < members_.size(); ++m)
            if (u < members_[m].cumulative) return m;
        return members_.size() - 1;
    }

    // The rows' masks in the order drawn; undefined when no member of this batch has one.
    at::Tensor gather_masks(const std::vector<size_t> &pick, const std::vector<int64_t> &count, int64_t seq_len) const {
        std::vector<at::Tensor> masks(members_.size());
        bool any = false;
        for (size_t m = 0; m < members_.size(); ++m) {
            if (count[m] == 0) continue;
            masks[m] = cdrmix::last_loss_mask(*members_[m].source);
            any = any || masks[m].defined();
            if (!masks[m].defined()) masks[m] = torch::ones({count[m], seq_len}, torch::kFloat32);
        }
        if (!any) return {};
        std::vector<at::Tensor> rows;
        std::vector<int64_t> taken(members_.size(), 0);
        for (size_t p : pick) rows.push_back(masks[p][taken[p]++]);
        return torch::stack(rows);
    }

    std::vector<Member> members_;
    uint64_t seed_;
    std::string where_;
    int64_t train_row_ = 0, val_row_ = 0;
    at::Tensor last_mask_; // of the last batch (see gather_masks)
};

// sources[i] without its mix keys (weight, name), plus the mix's rank and world_size unless it set its own.
Json member_config(const Json &entry, const Config &cfg) {
    Json c = entry;
    c.erase("weight");
    c.erase("name");
    for (const char *key : {"rank", "world_size"})
        if (!c.contains(key) && cfg.get_int("world_size") > 1) c[key] = cfg.get_int(key);
    return c;
}

std::vector<Member> read_members(const Config &cfg) {
    const Json sources = cfg.raw("sources");
    if (!sources.is_array() || sources.empty())
        throw Error(cfg.where("sources") + ": 'sources' must be a non-empty list of source tables, each with a "
                                           "weight and a type");
    std::vector<Member> members;
    std::map<std::string, int> type_count;
    for (const auto &e : sources)
        if (e.is_object() && !e.contains("name")) type_count[e.value("type", "")]++;
    double total = 0;
    for (size_t i = 0; i < sources.size(); ++i) {
        const Json &e = sources[i];
        const std::string at = cfg.where("sources") + ": sources[" + std::to_string(i + 1) + "]";
        if (!e.is_object() || !e.contains("type") || !e["type"].is_string())
            throw Error(at + " must be a table with a 'type' (a data source) and a 'weight'");
        if (!e.contains("weight") || !e["weight"].is_number() || !(e["weight"].get<double>() > 0) ||
            !std::isfinite(e["weight"].get<double>()))
            throw Error(at + " needs a 'weight' > 0 (its share of the rows, normalised over the sources)");
        if (e.contains("name") && !e["name"].is_string()) throw Error(at + ": 'name' must be a string");
        Member m;
        m.type = e["type"].get<std::string>();
        // The type names an unnamed source when no other unnamed one has it; else its position is added.
        m.name = e.contains("name") ? e["name"].get<std::string>()
                                    : type_count[m.type] > 1 ? m.type + std::to_string(i + 1) : m.type;
        for (const auto &other : members)
            if (other.name == m.name) throw Error(at + ": the name '" + m.name + "' is taken; give each source its own 'name'");
        m.weight = e["weight"].get<double>();
        total += m.weight;
        const Config member_cfg(member_config(e, cfg), "data source 'mix' sources[" + std::to_string(i + 1) + "]",
                                cfg.source(), cfg.sources(), cfg.path() + "/sources/" + std::to_string(i));
        m.source = cdrmix::Registry::global().create_data_source(member_cfg);
        members.push_back(std::move(m));
    }
    double running = 0;
    for (auto &m : members) {
        m.weight /= total;
        running += m.weight;
        m.cumulative = running;
    }
    return members;
}

void require_one_tokenizer(const std::vector<Member> &members, const Config &cfg) {
    const Json first = members.front().source->tokenizer()->to_json();
    for (size_t i = 1; i < members.size(); ++i)
        if (members[i].source->tokenizer()->to_json() != first)
            throw Error(cfg.where("sources") + ": source '" + members[i].name + "' has another tokenizer (" +
                        describe_tokenizer(*members[i].source->tokenizer()) + ") than '" + members.front().name +
                        "' (" + describe_tokenizer(*members.front().source->tokenizer()) +
                        "); the sources of a mix must share one tokenizer: give each the same tokenizer file");
}

std::shared_ptr<cdrmix::DataSource> make_mix_source(const Config &cfg) {
    std::vector<Member> members = read_members(cfg);
    require_one_tokenizer(members, cfg);
    return std::make_shared<MixSource>(std::move(members), static_cast<uint64_t>(cfg.get_int("seed")), cfg.where());
}

cdrmix::Schema schema() {
    cdrmix::Schema s("Several data sources with weights; each batch row drawn from one of them by weight");
    s.list("sources", "the member sources: tables each with 'weight' (> 0), 'type', optional 'name' and the "
                      "source's own keys")
        .required();
    s.integer("seed", 1234, "seed of the draw that picks each row's source");
    s.integer("rank", 0, "this process's rank, passed to every source that does not set its own").min(0);
    s.integer("world_size", 1, "processes sharing the data, passed to every source that does not set its own").min(1);
    return s;
}

} // namespace

CDRMIX_PLUGIN("mix", "1.0.0", "Several data sources mixed by weight, row by row; resumable, per-source shares and eval") {
    const cdrmix::Schema s = schema();
    registry.add_data_source("mix", s.doc(), s, make_mix_source);
}
