#include "data/run_data.hpp"

#include "metrics/record_fields.hpp"
#include "run/run_folder.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cdrmix::ui {

void Series::add(double s, double t, double v) {
    while (!step.empty() && step.back() >= s) {
        step.pop_back();
        time.pop_back();
        value.pop_back();
    }
    // Wall time can step back (clock changes); keep the axis ascending for binary search.
    if (!time.empty() && t < time.back()) t = time.back();
    step.push_back(s);
    time.push_back(t);
    value.push_back(v);
}

double Series::min() const {
    double m = std::numeric_limits<double>::infinity();
    for (double v : value)
        if (std::isfinite(v)) m = std::min(m, v);
    return m;
}

double Series::max() const {
    double m = -std::numeric_limits<double>::infinity();
    for (double v : value)
        if (std::isfinite(v)) m = std::max(m, v);
    return m;
}

LayerStats &RunData::layer(int64_t index) {
    auto it = std::lower_bound(layers.begin(), layers.end(), index,
                               [](const LayerStats &l, int64_t i) { return l.layer < i; });
    if (it == layers.end() || it->layer != index) {
        it = layers.insert(it, LayerStats{});
        it->layer = index;
    }
    return *it;
}

namespace {

namespace fs = cdrmix::fields::step;
namespace fm = cdrmix::fields::moe;

double number(const Json &r, const char *key) {
    auto it = r.find(key);
    return it != r.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

std::string text(const Json &r, const char *key) {
    auto it = r.find(key);
    return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void add_if_present(Series &s, const Json &r, const char *key, double step, double t) {
    auto it = r.find(key);
    if (it != r.end() && it->is_number()) s.add(step, t, it->get<double>());
}

void ingest_moe(RunData &run, const Json &moe, double step, double t) {
    for (const auto &m : moe) {
        if (!m.is_object()) continue;
        LayerStats &l = run.layer(m.value(fm::layer, int64_t(0)));
        add_if_present(l.token_entropy, m, fm::token_entropy, step, t);
        add_if_present(l.load_entropy, m, fm::load_entropy, step, t);
        add_if_present(l.dropped_tokens, m, fm::dropped_tokens, step, t);
        add_if_present(l.dead_experts, m, fm::dead_experts, step, t);
        add_if_present(l.load_cv, m, fm::load_cv, step, t);
        if (auto it = m.find(fm::losses); it != m.end() && it->is_object())
            for (auto &[name, v] : it->items())
                if (v.is_number()) l.losses[name].add(step, t, v.get<double>());
        auto tpe = m.find(fm::tokens_per_expert);
        if (tpe == m.end() || !tpe->is_array() || tpe->empty()) continue;
        const int64_t e = static_cast<int64_t>(tpe->size());
        if (l.num_experts != e) { // a different layout: start the load history afresh
            l.num_experts = e;
            l.load_step.clear();
            l.tokens_per_expert.clear();
        }
        while (!l.load_step.empty() && l.load_step.back() >= step) {
            l.load_step.pop_back();
            l.tokens_per_expert.resize(l.tokens_per_expert.size() - static_cast<size_t>(e));
        }
        l.load_step.push_back(step);
        for (const auto &c : *tpe) l.tokens_per_expert.push_back(c.is_number() ? c.get<float>() : 0.0f);
    }
}

} // namespace

void ingest(RunData &run, const Json &r) {
    if (!r.is_object()) return;
    ++run.records;
    const std::string event = r.value(cdrmix::fields::event, "");
    const double unix_time = number(r, cdrmix::fields::time);
    if (run.t0 < 0 && std::isfinite(unix_time)) run.t0 = unix_time;
    const double t = std::isfinite(unix_time) ? unix_time - run.t0 : 0.0;
    const double step = number(r, fs::step);
    if (event == cdrmix::fields::events::step && std::isfinite(step)) {
        add_if_present(run.loss, r, fs::loss, step, t);
        add_if_present(run.lr, r, fs::lr, step, t);
        add_if_present(run.grad_norm, r, fs::grad_norm, step, t);
        add_if_present(run.tokens_per_s, r, fs::tokens_per_s, step, t);
        add_if_present(run.aux_loss, r, fs::aux_loss, step, t);
        add_if_present(run.step_time, r, fs::step_time_s, step, t);
        add_if_present(run.rss_mb, r, fs::rss_mb, step, t);
        add_if_present(run.device_mem_mb, r, fs::device_mem_mb, step, t);
        add_if_present(run.comm_s, r, fs::comm_s, step, t);
        if (auto it = r.find(fs::ranks); it != r.end() && it->is_array()) {
            if (run.rank_tokens_per_s.size() < it->size()) run.rank_tokens_per_s.resize(it->size());
            for (size_t k = 0; k < it->size(); ++k)
                add_if_present(run.rank_tokens_per_s[k], (*it)[k], cdrmix::fields::rank::tokens_per_s, step, t);
        }
        run.total_steps = r.value(fs::total_steps, run.total_steps);
        run.eta_s = r.value(fs::eta_s, -1.0);
        if (auto it = r.find(fs::moe); it != r.end() && it->is_array()) ingest_moe(run, *it, step, t);
        run.ended = false;
    } else if (event == cdrmix::fields::events::eval && std::isfinite(step)) {
        add_if_present(run.val_loss, r, cdrmix::fields::eval::val_loss, step, t);
    } else if (event == cdrmix::fields::events::swap && std::isfinite(step)) {
        run.swaps.add(step, t, static_cast<double>(run.swaps.size() + 1));
    } else if (event == "checkpoint") {
        run.checkpoints.push_back(r.value("path", ""));
    } else if (event == cdrmix::fields::events::run) {
        run.dir = text(r, cdrmix::fields::run_record::dir);
        run.run_name = text(r, cdrmix::fields::run_record::name);
    } else if (event == cdrmix::fields::events::end) {
        run.ended = true;
        run.eta_s = 0;
        const double tokens_per_s = number(r, cdrmix::fields::end::tokens_per_s);
        run.run_tokens_per_s = std::isfinite(tokens_per_s) ? tokens_per_s : -1;
    } else if (event == "log") {
        // cdrmix.log records: every number becomes a series, x = its "step" or the record count.
        const double x = std::isfinite(step) ? step : static_cast<double>(run.records);
        for (auto &[key, v] : r.items())
            if (v.is_number() && key != "time" && key != "step") run.logged[key].add(x, t, v.get<double>());
    } else {
        return;
    }
    ++run.version;
}

std::vector<double> recent_utilisation(const LayerStats &l, int window) {
    std::vector<double> util(static_cast<size_t>(l.num_experts), 0.0);
    if (l.num_experts == 0 || l.load_step.empty()) return util;
    const size_t rows = l.load_step.size();
    const size_t from = rows - std::min<size_t>(rows, static_cast<size_t>(std::max(1, window)));
    double total = 0;
    for (size_t r = from; r < rows; ++r)
        for (int64_t e = 0; e < l.num_experts; ++e) {
            const double c = l.tokens_per_expert[r * static_cast<size_t>(l.num_experts) + static_cast<size_t>(e)];
            util[static_cast<size_t>(e)] += c;
            total += c;
        }
    if (total <= 0) return util;
    for (double &u : util) u = u * static_cast<double>(l.num_experts) / total;
    return util;
}

namespace {

int64_t checkpoint_step_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    return run_layout::checkpoint_step(slash == std::string::npos ? path : path.substr(slash + 1));
}

} // namespace

std::vector<int64_t> checkpoint_steps(const RunData &run) {
    std::vector<int64_t> steps;
    for (const auto &path : run.checkpoints) {
        const int64_t step = checkpoint_step_of(path);
        if (step >= 0 && std::find(steps.begin(), steps.end(), step) == steps.end()) steps.push_back(step);
    }
    return steps;
}

int64_t checkpoint_step_after(const RunData &run, size_t before) {
    for (size_t i = run.checkpoints.size(); i > before; --i)
        if (const int64_t step = checkpoint_step_of(run.checkpoints[i - 1]); step >= 0) return step;
    return -1;
}

} // namespace cdrmix::ui
