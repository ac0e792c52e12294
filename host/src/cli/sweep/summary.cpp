#include "cli/sweep/summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace cdrmix::sweep {

namespace {

Stat stat_of(const std::vector<double> &v) {
    Stat s;
    s.n = static_cast<int>(v.size());
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= static_cast<double>(v.size());
    if (v.size() > 1) {
        double sq = 0;
        for (double x : v) sq += (x - s.mean) * (x - s.mean);
        s.spread = std::sqrt(sq / static_cast<double>(v.size() - 1));
    }
    return s;
}

// A run's figures, each absent (NaN) when the run has no such record.
struct RunFigures {
    double final_val = NAN, best_val = NAN, tokens_per_s = NAN, load_cv = NAN, dead_experts = NAN;
};

RunFigures figures_of(const ui::RunData &run) {
    RunFigures f;
    if (!run.val_loss.empty()) f.final_val = run.val_loss.last(), f.best_val = run.val_loss.min();
    if (run.run_tokens_per_s >= 0) f.tokens_per_s = run.run_tokens_per_s;
    double cv = 0, dead = 0;
    int layers = 0;
    for (const auto &l : run.layers) {
        if (l.load_cv.empty() || l.dead_experts.empty()) continue;
        cv += l.load_cv.last(), dead += l.dead_experts.last(), ++layers;
    }
    if (layers > 0) f.load_cv = cv / layers, f.dead_experts = dead;
    return f;
}

struct Pool {
    std::vector<double> final_val, best_val, tokens_per_s, load_cv, dead_experts;
    void add(const RunFigures &f) {
        for (auto [v, list] : {std::pair{f.final_val, &final_val}, std::pair{f.best_val, &best_val},
                               std::pair{f.tokens_per_s, &tokens_per_s}, std::pair{f.load_cv, &load_cv},
                               std::pair{f.dead_experts, &dead_experts}})
            if (std::isfinite(v)) list->push_back(v);
    }
};

std::string number(double v, const char *format) {
    char buf[48];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

std::string shown(const Stat &s, const char *format) {
    if (s.n == 0) return "-";
    return s.n > 1 ? number(s.mean, format) + " ± " + number(s.spread, format) : number(s.mean, format);
}

std::string csv_field(const std::string &s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

// Markdown cells may not hold a bare '|' or a newline.
std::string md_cell(const std::string &s) {
    std::string out;
    for (char c : s) out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    return out;
}

std::string csv_number(const Stat &s, double v) { return s.n == 0 ? "" : number(v, "%.9g"); }

} // namespace

std::vector<Row> summarise(const std::vector<JobResult> &results) {
    struct Point {
        std::vector<std::pair<std::string, std::string>> axes;
        int seeds = 0, ok = 0;
        std::vector<std::string> failures;
        std::map<std::string, Pool> runs; // by run name
    };
    std::map<size_t, Point> points;
    for (const auto &r : results) {
        Point &p = points[r.job.point];
        p.axes = r.job.axes;
        ++p.seeds;
        if (r.ok) ++p.ok;
        else p.failures.push_back((r.job.seed > 0 ? "seed " + std::to_string(r.job.seed) + ": " : std::string()) + r.status);
        for (const auto &run : r.runs) p.runs[run.name].add(figures_of(run));
    }
    std::vector<Row> rows;
    for (auto &[index, p] : points) {
        std::string status = "ok";
        if (!p.failures.empty()) {
            status = "failed: ";
            for (size_t i = 0; i < p.failures.size(); ++i) status += (i ? "; " : "") + p.failures[i];
        }
        if (p.runs.empty()) p.runs[""]; // a point whose every job failed before writing a run still gets its row
        for (const auto &[name, pool] : p.runs) {
            Row row;
            row.point = index;
            row.axes = p.axes;
            row.run = name;
            row.seeds = p.seeds, row.seeds_ok = p.ok;
            row.final_val = stat_of(pool.final_val), row.best_val = stat_of(pool.best_val);
            row.tokens_per_s = stat_of(pool.tokens_per_s), row.load_cv = stat_of(pool.load_cv);
            row.dead_experts = stat_of(pool.dead_experts);
            row.status = status;
            rows.push_back(std::move(row));
        }
    }
    return rows;
}

std::string markdown_table(const Grid &grid, const std::vector<Row> &rows) {
    std::string out = "|";
    for (const auto &a : grid.axes) out += " " + md_cell(a.key) + " |";
    out += " run | seeds ok | final val loss | best val loss | tokens/s | load CV | dead experts | status |\n|";
    for (size_t i = 0; i < grid.axes.size() + 8; ++i) out += i < grid.axes.size() + 1 || i == grid.axes.size() + 7 ? "---|" : "---:|";
    out += "\n";
    for (const auto &r : rows) {
        out += "|";
        for (const auto &[key, value] : r.axes) out += " " + md_cell(value) + " |";
        out += " " + md_cell(r.run.empty() ? "-" : r.run) + " | " + std::to_string(r.seeds_ok) + "/" +
               std::to_string(r.seeds) + " | " + shown(r.final_val, "%.4f") + " | " + shown(r.best_val, "%.4f") + " | " +
               shown(r.tokens_per_s, "%.0f") + " | " + shown(r.load_cv, "%.3f") + " | " + shown(r.dead_experts, "%.2g") +
               " | " + md_cell(r.status) + " |\n";
    }
    return out;
}

std::string csv_table(const Grid &grid, const std::vector<Row> &rows) {
    std::string out;
    for (const auto &a : grid.axes) out += csv_field(a.key) + ",";
    out += "run,seeds,seeds_ok,final_val_loss_mean,final_val_loss_std,best_val_loss_mean,best_val_loss_std,"
           "tokens_per_s_mean,tokens_per_s_std,load_cv_mean,load_cv_std,dead_experts_mean,dead_experts_std,status\n";
    for (const auto &r : rows) {
        for (const auto &[key, value] : r.axes) out += csv_field(value) + ",";
        out += csv_field(r.run) + "," + std::to_string(r.seeds) + "," + std::to_string(r.seeds_ok);
        for (const Stat *s : {&r.final_val, &r.best_val, &r.tokens_per_s, &r.load_cv, &r.dead_experts})
            out += "," + csv_number(*s, s->mean) + "," + csv_number(*s, s->spread);
        out += "," + csv_field(r.status) + "\n";
    }
    return out;
}

} // namespace cdrmix::sweep
