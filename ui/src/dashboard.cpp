#include "dashboard.hpp"

#include "data/palette.hpp"
#include "data/smoothing.hpp"
#include "plot.hpp"


#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace cdrmix::ui {

namespace {

ImU32 to_imgui(Rgb c) { return IM_COL32(c.r, c.g, c.b, 255); }

std::string eta_text(double s) {
    if (!(s >= 0)) return "?";
    char buf[32];
    const long t = static_cast<long>(s + 0.5);
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%lds", t);
    return buf;
}

// Plot cache revisions (the cache key also holds the data's address, so only change matters):
// a run's records change its version; the smoothing weight changes its smoothed loss.
uint64_t revision(const RunData &run) { return static_cast<uint64_t>(run.version) << 1; }

void section(const char *name) {
    ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(120, 190, 255, 255));
    ImGui::TextUnformatted(name);
    ImGui::PopStyleColor();
    ImGui::Separator();
}

} // namespace

ImU32 Dashboard::run_colour(size_t index) { return to_imgui(palette_colour(index)); }

size_t Dashboard::add_run(std::string name) {
    RunView v;
    v.data.name = std::move(name);
    v.colour = run_colour(runs_.size());
    runs_.push_back(std::move(v));
    return runs_.size() - 1;
}

ImU32 Dashboard::layer_colour(size_t run, size_t layer, size_t layers) const {
    return to_imgui(ui::layer_colour(run, runs_.size(), layer, layers));
}

void Dashboard::draw() {
    const ImGuiViewport *vp = ImGui::GetMainViewport();
    ImGui::SetNextWindowPos(vp->WorkPos);
    ImGui::SetNextWindowSize(vp->WorkSize);
    ImGui::Begin("##dashboard", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                     ImGuiWindowFlags_NoBringToFrontOnFocus);
    draw_header();
    start_pending_branch();
    swap_marks_.clear();
    for (const auto &r : runs_) {
        const auto &x = x_of(r.data.swaps);
        swap_marks_.insert(swap_marks_.end(), x.begin(), x.end());
    }
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float gap = ImGui::GetStyle().ItemSpacing.x;
    const float left_w = avail.x * 0.44f, col_w = (avail.x - left_w - 2 * gap) / 2;

    ImGui::BeginChild("##left", ImVec2(left_w, avail.y));
    const bool tools = live_ || branching_;
    const float sample_h = live_ ? 230.0f : tools ? 130.0f : 0.0f;
    size_t layers = 0;
    for (const auto &r : runs_) layers = std::max(layers, r.data.layers.size());
    const float load_h = 100.0f + static_cast<float>(layers) * 60.0f; // heatmap row + time strip per layer
    draw_loss(std::max(140.0f, avail.y - sample_h - load_h - 3 * ImGui::GetTextLineHeightWithSpacing()));
    draw_expert_load();
    if (tools) draw_tools();
    ImGui::EndChild();

    const float plot_h = std::max(60.0f, (avail.y - 30) / 4 - 2 * ImGui::GetTextLineHeightWithSpacing() - 8);
    ImGui::SameLine();
    ImGui::BeginChild("##routing", ImVec2(col_w, avail.y));
    draw_routing(plot_h);
    ImGui::EndChild();
    ImGui::SameLine();
    ImGui::BeginChild("##system", ImVec2(col_w, avail.y));
    draw_system(plot_h);
    ImGui::EndChild();
    ImGui::End();
}

void Dashboard::draw_header() {
    for (size_t i = 0; i < runs_.size(); ++i) {
        const RunData &r = runs_[i].data;
        if (i) ImGui::SameLine(0, 24);
        ImGui::ColorButton(("##run" + std::to_string(i)).c_str(), ImGui::ColorConvertU32ToFloat4(runs_[i].colour),
                           ImGuiColorEditFlags_NoTooltip, ImVec2(12, 12));
        ImGui::SameLine(0, 4);
        const double step = r.loss.empty() ? 0 : r.loss.step.back();
        ImGui::Text("%s  step %.0f/%lld  %.0f tok/s  %s", r.name.c_str(), step, static_cast<long long>(r.total_steps),
                    r.tokens_per_s.empty() ? 0.0 : r.tokens_per_s.last(),
                    r.ended ? "done" : ("ETA " + eta_text(r.eta_s)).c_str());
    }
    if (live_) {
        ImGui::SameLine(0, 24);
        ImGui::Text("[%s]", live_->state().c_str());
        const bool finished = live_->finished();
        ImGui::BeginDisabled(finished);
        ImGui::SameLine();
        if (live_->paused() ? ImGui::Button("Resume") : ImGui::Button("Pause")) live_->paused() ? live_->resume() : live_->pause();
        ImGui::SameLine();
        if (ImGui::Button("Stop")) live_->stop();
        ImGui::SameLine();
        ImGui::BeginDisabled(live_->checkpoint_pending());
        if (ImGui::Button("Checkpoint now")) live_->checkpoint_now();
        ImGui::EndDisabled();
        ImGui::EndDisabled();
    }
    ImGui::SetNextItemWidth(140);
    ImGui::SliderFloat("smoothing", &smoothing_, 0.0f, 0.999f, "%.3f");
    ImGui::SameLine();
    ImGui::Checkbox("log scale", &log_loss_);
    ImGui::SameLine();
    int axis = by_time_ ? 1 : 0;
    ImGui::SetNextItemWidth(110);
    if (ImGui::Combo("x axis", &axis, "step\0wall time\0")) by_time_ = axis == 1;
    if (!status_.empty()) {
        ImGui::SameLine(0, 24);
        ImGui::TextUnformatted(status_.c_str());
    }
}

uint64_t Dashboard::smoothed_revision(const RunView &v) const {
    uint32_t weight_bits = 0;
    static_assert(sizeof weight_bits == sizeof smoothing_);
    std::memcpy(&weight_bits, &smoothing_, sizeof weight_bits);
    return (static_cast<uint64_t>(v.data.version) << 32) ^ weight_bits;
}

void Dashboard::draw_loss(float height) {
    std::vector<PlotLine> lines;
    for (size_t i = 0; i < runs_.size(); ++i) {
        RunView &v = runs_[i];
        if (v.smoothed_version != v.data.version || v.smoothed_weight != smoothing_) {
            v.smoothed = ema_smooth(v.data.loss.value, smoothing_);
            v.smoothed_version = v.data.version;
            v.smoothed_weight = smoothing_;
        }
        const std::string tag = runs_.size() > 1 ? v.data.name + " " : "";
        lines.push_back({tag + "train", &x_of(v.data.loss), &v.smoothed, &v.data.loss.value,
                         by_time_ ? &v.data.loss.step : nullptr, v.colour, false,
                         smoothed_revision(v)});
        if (!v.data.val_loss.empty()) {
            lines.push_back({tag + "val", &x_of(v.data.val_loss), &v.data.val_loss.value, nullptr,
                             by_time_ ? &v.data.val_loss.step : nullptr, to_imgui(val_colour(palette_colour(i))), true,
                             revision(v.data)});
        }
    }
    section("Loss (train: EMA-smoothed over faint raw; val: dots)");
    PlotStyle style;
    style.marks = &swap_marks_;
    style.height = height;
    style.log_y = log_loss_;
    style.x_label = x_label();
    line_plot("##loss", lines, style);
}

void Dashboard::draw_expert_load() {
    section("Expert load (tokens per expert / fair share)");
    if (runs_.empty()) return;
    if (runs_.size() > 1) {
        ImGui::SetNextItemWidth(200);
        if (ImGui::BeginCombo("run##moe", runs_[static_cast<size_t>(moe_run_)].data.name.c_str())) {
            for (size_t i = 0; i < runs_.size(); ++i)
                if (ImGui::Selectable(runs_[i].data.name.c_str(), static_cast<int>(i) == moe_run_)) moe_run_ = static_cast<int>(i);
            ImGui::EndCombo();
        }
        ImGui::SameLine();
    }
    ImGui::SetNextItemWidth(120);
    ImGui::SliderInt("window (steps)", &load_window_, 1, 500);
    const RunData &run = runs_[static_cast<size_t>(moe_run_)].data;
    load_heatmap(run, load_window_);
    if (run.layers.empty()) return;
    ImGui::TextDisabled("over time (x: steps %.0f..%.0f; rows: experts; red: dead)",
                        run.layers.front().load_step.empty() ? 0.0 : run.layers.front().load_step.front(),
                        run.layers.front().load_step.empty() ? 0.0 : run.layers.front().load_step.back());
    load_over_time(run, 30);
}

void Dashboard::draw_routing(float h) {
    struct Panel {
        const char *title;
        Series LayerStats::*member;
        const char *format;
    };
    const Panel panels[] = {
        {"Per-token routing entropy (/ ln E; 0 = confident)", &LayerStats::token_entropy, "%.3f"},
        {"Load entropy (/ ln E; 1 = balanced)", &LayerStats::load_entropy, "%.3f"},
        {"Dropped tokens per step", &LayerStats::dropped_tokens, "%.0f"},
    };
    section("Routing, per MoE layer");
    PlotStyle style;
    style.marks = &swap_marks_;
    style.height = h;
    style.stats = false;
    style.x_label = x_label();
    std::vector<std::string> labels;
    for (const auto &p : panels) {
        std::vector<PlotLine> lines;
        for (size_t r = 0; r < runs_.size(); ++r) {
            const auto &layers = runs_[r].data.layers;
            for (size_t l = 0; l < layers.size(); ++l) {
                const Series &s = layers[l].*p.member;
                std::string label = (runs_.size() > 1 ? runs_[r].data.name + " " : "") + "L" + std::to_string(layers[l].layer);
                lines.push_back({label, &x_of(s), &s.value, nullptr, by_time_ ? &s.step : nullptr,
                                 layer_colour(r, l, layers.size()), false, revision(runs_[r].data)});
            }
        }
        style.y_format = p.format;
        line_plot(p.title, lines, style);
    }
    std::vector<PlotLine> aux;
    for (size_t r = 0; r < runs_.size(); ++r) {
        const auto &layers = runs_[r].data.layers;
        for (size_t l = 0; l < layers.size(); ++l) {
            size_t k = 0;
            for (const auto &[name, s] : layers[l].losses) {
                ImVec4 c = ImGui::ColorConvertU32ToFloat4(layer_colour(r, l, layers.size()));
                if (k++ % 2) c.x *= 0.6f, c.y *= 0.6f, c.z *= 0.6f; // second loss of a layer: darker
                aux.push_back({(runs_.size() > 1 ? runs_[r].data.name + " " : "") + "L" + std::to_string(layers[l].layer) +
                                   " " + name,
                               &x_of(s), &s.value, nullptr, by_time_ ? &s.step : nullptr,
                               ImGui::ColorConvertFloat4ToU32(c), false, revision(runs_[r].data)});
            }
        }
    }
    style.y_format = "%.4g";
    line_plot("Router auxiliary losses", aux, style);
}

void Dashboard::draw_system(float h) {
    struct Panel {
        const char *title;
        Series RunData::*member;
        const char *format;
        bool log;
        bool only_with_data; // drawn only when some run has points (GPU memory on CPU runs has none)
    };
    const Panel panels[] = {{"Throughput (tokens/s)", &RunData::tokens_per_s, "%.0f", false, false},
                            {"Learning rate", &RunData::lr, "%.3g", false, false},
                            {"Gradient norm (before clipping; log)", &RunData::grad_norm, "%.3g", true, false},
                            {"Memory in use (process RSS, MB)", &RunData::rss_mb, "%.0f", false, false},
                            {"GPU memory in use (MB)", &RunData::device_mem_mb, "%.0f", false, true},
                            {"Waiting on other ranks (s per step, slowest rank)", &RunData::comm_s, "%.3g", false, true}};
    section("Training");
    for (const auto &p : panels) {
        if (p.only_with_data &&
            std::none_of(runs_.begin(), runs_.end(), [&](const auto &run) { return !(run.data.*p.member).value.empty(); }))
            continue;
        std::vector<PlotLine> lines;
        for (size_t r = 0; r < runs_.size(); ++r) {
            const Series &s = runs_[r].data.*p.member;
            lines.push_back({runs_.size() > 1 ? runs_[r].data.name : std::string("last"), &x_of(s), &s.value, nullptr,
                             by_time_ ? &s.step : nullptr, runs_[r].colour, false, revision(runs_[r].data)});
        }
        PlotStyle style;
        style.marks = &swap_marks_;
        style.height = h;
        style.log_y = p.log;
        style.y_format = p.format;
        style.x_label = x_label();
        line_plot(p.title, lines, style);
    }
    draw_ranks(h);
    draw_logged(h);
}

// Multi-process runs: each rank's tokens/s, one line per rank (a slow rank stands out).
void Dashboard::draw_ranks(float h) {
    std::vector<PlotLine> lines;
    for (size_t r = 0; r < runs_.size(); ++r) {
        const auto &ranks = runs_[r].data.rank_tokens_per_s;
        for (size_t k = 0; k < ranks.size(); ++k)
            lines.push_back({(runs_.size() > 1 ? runs_[r].data.name + " " : std::string()) + "rank " + std::to_string(k),
                             &x_of(ranks[k]), &ranks[k].value, nullptr, by_time_ ? &ranks[k].step : nullptr,
                             layer_colour(r, k, ranks.size()), false, revision(runs_[r].data)});
    }
    if (lines.empty()) return;
    PlotStyle style;
    style.marks = &swap_marks_;
    style.height = h;
    style.y_format = "%.0f";
    style.x_label = x_label();
    line_plot("Throughput per rank (tokens/s)", lines, style);
}

// Numbers a script logs with cdrmix.log{...}: one plot per key, runs overlaid.
void Dashboard::draw_logged(float h) {
    std::map<std::string, std::vector<PlotLine>> by_key;
    for (size_t r = 0; r < runs_.size(); ++r)
        for (const auto &[key, s] : runs_[r].data.logged)
            by_key[key].push_back({runs_.size() > 1 ? runs_[r].data.name : std::string("last"), &x_of(s), &s.value,
                                   nullptr, by_time_ ? &s.step : nullptr, runs_[r].colour, false, revision(runs_[r].data)});
    if (by_key.empty()) return;
    section("Logged with cdrmix.log");
    PlotStyle style;
    style.marks = &swap_marks_;
    style.height = h;
    style.x_label = x_label();
    for (const auto &[key, lines] : by_key) line_plot(key.c_str(), lines, style);
}

void Dashboard::open_inspector(const std::string &text) {
    std::snprintf(inspect_text_, sizeof inspect_text_, "%s", text.c_str());
    open_inspector_ = true;
    select_first_token_ = true;
    if (live_) live_->inspect(text);
}

void Dashboard::open_specialisation() {
    open_specialisation_ = true;
    if (live_) live_->specialise(specialise_);
}

void Dashboard::draw_tools() {
    if (!ImGui::BeginTabBar("##tools")) return;
    if (live_) {
        if (ImGui::BeginTabItem("Sample")) {
            draw_sampling();
            ImGui::EndTabItem();
        }
        const ImGuiTabItemFlags open = open_inspector_ ? ImGuiTabItemFlags_SetSelected : 0;
        open_inspector_ = false;
        if (ImGui::BeginTabItem("Inspect routing", nullptr, open)) {
            draw_inspector();
            ImGui::EndTabItem();
        }
        const ImGuiTabItemFlags open_spec = open_specialisation_ ? ImGuiTabItemFlags_SetSelected : 0;
        open_specialisation_ = false;
        if (ImGui::BeginTabItem("Specialisation", nullptr, open_spec)) {
            draw_specialisation();
            ImGui::EndTabItem();
        }
        if (ImGui::BeginTabItem("Swap router")) {
            draw_swap();
            ImGui::EndTabItem();
        }
    }
    if (branching_ && ImGui::BeginTabItem("Branch")) {
        draw_branch();
        ImGui::EndTabItem();
    }
    ImGui::EndTabBar();
}

void Dashboard::draw_inspector() {
    const InspectView view = live_->inspect_view();
    ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.55f);
    const bool entered = ImGui::InputText("text##inspect", inspect_text_, sizeof inspect_text_,
                                          ImGuiInputTextFlags_EnterReturnsTrue);
    ImGui::SameLine();
    ImGui::BeginDisabled(view.busy);
    if ((ImGui::Button("Route") || entered) && !view.busy) live_->inspect(inspect_text_);
    ImGui::EndDisabled();
    ImGui::SameLine();
    ImGui::TextDisabled("%s", view.status.c_str());
    if (view.routing != inspected_json_) {
        inspected_json_ = view.routing;
        inspection_ = {};
        inspection_error_.clear();
        selected_token_ = -1;
        if (!inspected_json_.is_null()) {
            try {
                inspection_ = parse_inspection(inspected_json_);
            } catch (const std::exception &e) {
                inspection_error_ = e.what();
            }
            if (select_first_token_ && !inspection_.tokens.empty()) selected_token_ = 0;
            select_first_token_ = false;
        }
        inspect_layer_ = std::min<int>(inspect_layer_, std::max<int>(0, static_cast<int>(inspection_.layers.size()) - 1));
    }
    if (!inspection_error_.empty()) {
        ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", inspection_error_.c_str());
        return;
    }
    if (inspection_.tokens.empty()) {
        ImGui::TextDisabled("Route a text to see which experts each token goes to in every MoE layer.");
        return;
    }
    const auto layer = static_cast<size_t>(inspect_layer_);
    ImGui::SetNextItemWidth(110);
    if (ImGui::BeginCombo("colour by", ("layer " + std::to_string(inspection_.layers[layer])).c_str())) {
        for (size_t l = 0; l < inspection_.layers.size(); ++l)
            if (ImGui::Selectable(("layer " + std::to_string(inspection_.layers[l])).c_str(), l == layer))
                inspect_layer_ = static_cast<int>(l);
        ImGui::EndCombo();
    }
    // The experts as swatches: hovering one lists the text's tokens it received in this layer.
    for (int64_t e = 0; e < inspection_.num_experts; ++e) {
        ImGui::SameLine(0, e ? 4.0f : 16.0f);
        ImGui::ColorButton(("##expert" + std::to_string(e)).c_str(),
                           ImGui::ColorConvertU32ToFloat4(to_imgui(palette_colour(static_cast<size_t>(e)))),
                           ImGuiColorEditFlags_NoTooltip, ImVec2(14, 14));
        if (ImGui::IsItemHovered()) {
            const auto received = inspection_.expert_tokens(layer, e);
            ImGui::BeginTooltip();
            ImGui::Text("expert %lld, layer %lld: %zu distinct tokens of this text", static_cast<long long>(e),
                        static_cast<long long>(inspection_.layers[layer]), received.size());
            for (size_t i = 0; i < received.size() && i < 16; ++i)
                ImGui::Text("  '%s'  x%lld", visible_token(received[i].first).c_str(), static_cast<long long>(received[i].second));
            ImGui::EndTooltip();
        }
    }
    ImGui::SameLine();
    ImGui::TextDisabled("experts (hover)");

    // The tokens, wrapped, each in its top expert's colour for the chosen layer; click for every layer's routing.
    const float table_h = 24.0f + 18.0f * static_cast<float>(inspection_.layers.size());
    ImGui::BeginChild("##inspect_tokens", ImVec2(0, std::max(40.0f, ImGui::GetContentRegionAvail().y - table_h)), true);
    const float right = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x;
    for (size_t t = 0; t < inspection_.tokens.size(); ++t) {
        const std::string label = visible_token(inspection_.tokens[t].text) + "##tok" + std::to_string(t);
        const float w = ImGui::CalcTextSize(label.c_str(), nullptr, true).x + 2 * ImGui::GetStyle().FramePadding.x;
        if (t > 0) {
            ImGui::SameLine(0, 2);
            if (ImGui::GetCursorScreenPos().x + w > right) ImGui::NewLine();
        }
        const int64_t top = inspection_.top_expert(t, layer);
        const Rgb c = top < 0 ? Rgb{90, 90, 90} : palette_colour(static_cast<size_t>(top));
        ImGui::PushStyleColor(ImGuiCol_Button, IM_COL32(c.r, c.g, c.b, static_cast<int>(t) == selected_token_ ? 255 : 150));
        ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(0, 0, 0, 255));
        if (ImGui::Button(label.c_str())) selected_token_ = static_cast<int>(t);
        ImGui::PopStyleColor(2);
        if (ImGui::IsItemHovered()) {
            ImGui::BeginTooltip();
            draw_token_routing(t);
            ImGui::EndTooltip();
        }
    }
    ImGui::EndChild();
    if (selected_token_ >= 0 && static_cast<size_t>(selected_token_) < inspection_.tokens.size())
        draw_token_routing(static_cast<size_t>(selected_token_));
}

void Dashboard::draw_token_routing(size_t token) const {
    const InspectedToken &t = inspection_.tokens[token];
    ImGui::Text("token %zu '%s' (id %lld): experts and router probabilities per MoE layer", token,
                visible_token(t.text).c_str(), static_cast<long long>(t.id));
    if (!ImGui::BeginTable("##token_routing", 2, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) return;
    for (size_t l = 0; l < t.layers.size(); ++l) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::Text("layer %lld", static_cast<long long>(inspection_.layers[l]));
        ImGui::TableNextColumn();
        if (t.layers[l].empty()) ImGui::TextDisabled("dropped (capacity)");
        for (size_t i = 0; i < t.layers[l].size(); ++i) {
            const auto &c = t.layers[l][i];
            if (i) ImGui::SameLine(0, 12);
            ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(to_imgui(palette_colour(static_cast<size_t>(c.expert)))),
                               "e%lld %.3f", static_cast<long long>(c.expert), c.prob);
        }
    }
    ImGui::EndTable();
}

void Dashboard::draw_specialisation() {
    const SpecialisationView view = live_->specialisation_view();
    ImGui::SetNextItemWidth(70);
    ImGui::DragInt("batches##spec", &specialise_.batches, 1, 1, 256);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(80);
    int split = specialise_.train_split ? 1 : 0;
    ImGui::Combo("split##spec", &split, "val\0train\0");
    specialise_.train_split = split == 1;
    ImGui::SameLine();
    ImGui::BeginDisabled(view.busy);
    if (ImGui::Button("Count")) live_->specialise(specialise_);
    ImGui::EndDisabled();
    ImGui::SameLine();
    ImGui::TextDisabled("%s", view.status.c_str());
    if (view.specialisation != specialised_json_) {
        specialised_json_ = view.specialisation;
        specialisation_ = {};
        specialisation_error_.clear();
        if (!specialised_json_.is_null()) {
            try {
                specialisation_ = parse_specialisation(specialised_json_);
            } catch (const std::exception &e) {
                specialisation_error_ = e.what();
            }
        }
        specialise_layer_ =
            std::min<int>(specialise_layer_, std::max<int>(0, static_cast<int>(specialisation_.layers.size()) - 1));
    }
    if (!specialisation_error_.empty()) {
        ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", specialisation_error_.c_str());
        return;
    }
    if (specialisation_.layers.empty()) {
        ImGui::TextDisabled("Count which tokens, and which classes of token, each expert receives over a sample of the "
                            "run's data (the trainer's batch size and length).");
        return;
    }
    const LayerProfile &layer = specialisation_.layers[static_cast<size_t>(specialise_layer_)];
    ImGui::SetNextItemWidth(110);
    if (ImGui::BeginCombo("layer##spec", ("layer " + std::to_string(layer.layer)).c_str())) {
        for (size_t l = 0; l < specialisation_.layers.size(); ++l)
            if (ImGui::Selectable(("layer " + std::to_string(specialisation_.layers[l].layer)).c_str(),
                                  static_cast<int>(l) == specialise_layer_))
                specialise_layer_ = static_cast<int>(l);
        ImGui::EndCombo();
    }
    const int64_t total = std::max<int64_t>(1, layer.slots());
    const ImGuiTableFlags flags = ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY |
                                  ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("##specialisation", 4, flags, ImVec2(0, ImGui::GetContentRegionAvail().y))) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("expert");
    ImGui::TableSetupColumn("share");
    ImGui::TableSetupColumn("token classes");
    ImGui::TableSetupColumn("most received (count)", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableHeadersRow();
    const float bar_w = 140, bar_h = ImGui::GetTextLineHeight();
    for (size_t e = 0; e < layer.experts.size(); ++e) {
        const ExpertProfile &p = layer.experts[e];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::ColorButton(("##spec_expert" + std::to_string(e)).c_str(),
                           ImGui::ColorConvertU32ToFloat4(to_imgui(palette_colour(e))), ImGuiColorEditFlags_NoTooltip,
                           ImVec2(bar_h, bar_h));
        ImGui::SameLine(0, 4);
        ImGui::Text("e%zu", e);
        ImGui::TableNextColumn();
        ImGui::Text("%5.1f%%", 100.0 * double(p.slots) / double(total));
        // The expert's slots split by token class, as one bar; classes keep one grey level each.
        ImGui::TableNextColumn();
        const ImVec2 at = ImGui::GetCursorScreenPos();
        ImDrawList *draw = ImGui::GetWindowDrawList();
        float x = at.x;
        for (const auto &[name, n] : p.classes) {
            const float w = p.slots > 0 ? bar_w * float(n) / float(p.slots) : 0.0f;
            const auto shade = static_cast<int>(235 - 35 * (specialisation_.class_index(name) % 5));
            draw->AddRectFilled(ImVec2(x, at.y), ImVec2(x + w, at.y + bar_h), IM_COL32(shade, shade, shade, 255));
            x += w;
        }
        ImGui::Dummy(ImVec2(bar_w, bar_h));
        if (ImGui::IsItemHovered()) {
            ImGui::BeginTooltip();
            for (const auto &[name, n] : p.classes)
                if (n > 0)
                    ImGui::Text("%-12s %5.1f%%  (%lld)", name.c_str(), 100.0 * double(n) / double(std::max<int64_t>(1, p.slots)),
                                static_cast<long long>(n));
            ImGui::EndTooltip();
        }
        // The two largest classes in words.
        std::string largest;
        for (size_t c = 0; c < p.classes.size() && c < 2; ++c)
            if (p.classes[c].second > 0)
                largest += (c ? "  " : "") + p.classes[c].first + " " +
                           std::to_string(static_cast<int>(std::lround(100.0 * double(p.classes[c].second) / double(p.slots)))) + "%";
        ImGui::SameLine(0, 6);
        ImGui::TextUnformatted(largest.c_str());
        ImGui::TableNextColumn();
        std::string top;
        for (const auto &[text, n] : p.top) top += "'" + visible_token(text) + "' " + std::to_string(n) + "   ";
        ImGui::TextUnformatted(top.c_str());
    }
    ImGui::EndTable();
}

bool Dashboard::draw_router_choice(const std::vector<std::string> &types, SwapRequest &request) {
    std::vector<int64_t> moe_layers;
    for (const auto &r : runs_)
        for (const auto &l : r.data.layers)
            if (std::find(moe_layers.begin(), moe_layers.end(), l.layer) == moe_layers.end()) moe_layers.push_back(l.layer);
    std::sort(moe_layers.begin(), moe_layers.end());
    swap_layer_ = std::clamp(swap_layer_, 0, static_cast<int>(moe_layers.size()));
    swap_router_ = std::clamp(swap_router_, 0, std::max(0, static_cast<int>(types.size()) - 1));
    ImGui::SetNextItemWidth(150);
    const std::string layer_name = swap_layer_ == 0 ? "every MoE layer" : "layer " + std::to_string(moe_layers[swap_layer_ - 1]);
    if (ImGui::BeginCombo("layer##router_choice", layer_name.c_str())) {
        if (ImGui::Selectable("every MoE layer", swap_layer_ == 0)) swap_layer_ = 0;
        for (size_t i = 0; i < moe_layers.size(); ++i)
            if (ImGui::Selectable(("layer " + std::to_string(moe_layers[i])).c_str(), swap_layer_ == static_cast<int>(i) + 1))
                swap_layer_ = static_cast<int>(i) + 1;
        ImGui::EndCombo();
    }
    ImGui::SameLine();
    ImGui::SetNextItemWidth(150);
    if (ImGui::BeginCombo("router##router_choice", types.empty() ? "" : types[static_cast<size_t>(swap_router_)].c_str())) {
        for (size_t i = 0; i < types.size(); ++i)
            if (ImGui::Selectable(types[i].c_str(), swap_router_ == static_cast<int>(i))) swap_router_ = static_cast<int>(i);
        ImGui::EndCombo();
    }
    ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.5f);
    ImGui::InputTextWithHint("options##router_choice", "more router keys as JSON, e.g. {\"top_k\": 1}", swap_options_,
                             sizeof swap_options_);
    if (types.empty()) return false;
    request.layer = swap_layer_ == 0 ? -1 : static_cast<int>(moe_layers[static_cast<size_t>(swap_layer_ - 1)]);
    request.router_type = types[static_cast<size_t>(swap_router_)];
    request.options = swap_options_;
    return true;
}

void Dashboard::draw_swap() {
    ImGui::TextWrapped("Replace the router of the running model at the next step boundary, keeping the experts and "
                       "their optimiser state; the swap is marked on every plot (dashed). As a branch, the run takes a "
                       "checkpoint now and goes on unchanged, and the swap continues from that checkpoint as a new run.");
    SwapRequest request;
    const bool ready = draw_router_choice(live_->router_types(), request);
    const RunData &run = runs_[live_run_].data;
    if (branching_) {
        ImGui::SameLine();
        ImGui::Checkbox("as a branch", &swap_as_branch_);
    }
    const bool as_branch = branching_ && swap_as_branch_;
    ImGui::SameLine();
    ImGui::BeginDisabled(live_->finished() || !ready || (as_branch && (pending_branch_ || run.dir.empty())));
    if (ImGui::Button(as_branch ? "Swap as a branch" : "Swap")) {
        if (as_branch) {
            pending_branch_ = PendingBranch{request, run.checkpoints.size()};
            live_->checkpoint_now();
        } else {
            live_->swap_router(request);
        }
    }
    ImGui::EndDisabled();
    if (pending_branch_) ImGui::TextDisabled("waiting for the checkpoint to branch from");
    const std::string outcome = as_branch ? branching_->status() : live_->swap_outcome();
    if (!outcome.empty()) ImGui::TextWrapped("%s", outcome.c_str());
}

void Dashboard::start_pending_branch() {
    if (!pending_branch_ || !branching_) return;
    const RunData &run = runs_[live_run_].data;
    const int64_t step = checkpoint_step_after(run, pending_branch_->checkpoints_before);
    if (step >= 0) {
        branching_->branch(run.dir, step, pending_branch_->swap);
        pending_branch_.reset();
    } else if (live_->finished()) {
        pending_branch_.reset(); // the run ended without the checkpoint
    }
}

void Dashboard::draw_branch() {
    ImGui::TextWrapped("Continue a run from one of its checkpoints with another router, as a new run overlaid here "
                       "(`cdrmix branch`).");
    // The runs with a folder and at least one checkpoint step.
    std::vector<size_t> runs;
    for (size_t i = 0; i < runs_.size(); ++i)
        if (!runs_[i].data.dir.empty() && !runs_[i].data.checkpoints.empty()) runs.push_back(i);
    if (runs.empty()) {
        ImGui::TextDisabled("No run shown here has a checkpoint yet.");
        return;
    }
    branch_run_ = std::clamp(branch_run_, 0, static_cast<int>(runs.size()) - 1);
    const RunData &run = runs_[runs[static_cast<size_t>(branch_run_)]].data;
    ImGui::SetNextItemWidth(200);
    if (ImGui::BeginCombo("run##branch", run.name.c_str())) {
        for (size_t i = 0; i < runs.size(); ++i)
            if (ImGui::Selectable(runs_[runs[i]].data.name.c_str(), branch_run_ == static_cast<int>(i)))
                branch_run_ = static_cast<int>(i);
        ImGui::EndCombo();
    }
    const std::vector<int64_t> steps = checkpoint_steps(run);
    branch_checkpoint_ = std::clamp(branch_checkpoint_, 0, std::max(0, static_cast<int>(steps.size()) - 1));
    ImGui::SameLine();
    ImGui::SetNextItemWidth(120);
    const std::string step_name = steps.empty() ? "" : "step " + std::to_string(steps[static_cast<size_t>(branch_checkpoint_)]);
    if (ImGui::BeginCombo("from##branch", step_name.c_str())) {
        for (size_t i = 0; i < steps.size(); ++i)
            if (ImGui::Selectable(("step " + std::to_string(steps[i])).c_str(), branch_checkpoint_ == static_cast<int>(i)))
                branch_checkpoint_ = static_cast<int>(i);
        ImGui::EndCombo();
    }
    SwapRequest request;
    const bool ready = draw_router_choice(branching_->router_types(), request) && !steps.empty();
    ImGui::SameLine();
    ImGui::BeginDisabled(!ready);
    if (ImGui::Button("Branch")) branching_->branch(run.dir, steps[static_cast<size_t>(branch_checkpoint_)], request);
    ImGui::EndDisabled();
    const std::string status = branching_->status();
    if (!status.empty()) ImGui::TextWrapped("%s", status.c_str());
}

void Dashboard::draw_sampling() {
    const SampleView view = live_->sample_view();
    ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.3f);
    ImGui::InputText("prompt", prompt_, sizeof prompt_);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(60);
    ImGui::DragInt("tokens", &sample_.max_tokens, 1, 1, 2000);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(50);
    ImGui::DragFloat("temp", &sample_.temperature, 0.01f, 0.0f, 2.0f, "%.2f");
    ImGui::SameLine();
    ImGui::BeginDisabled(view.busy);
    if (ImGui::Button("Generate")) {
        sample_.prompt = prompt_;
        live_->sample(sample_);
    }
    ImGui::EndDisabled();
    ImGui::TextDisabled("%s", view.status.c_str());
    ImGui::BeginChild("##sample_text", ImVec2(0, 0), true);
    ImGui::PushTextWrapPos(0);
    if (!view.text.empty()) ImGui::TextUnformatted(view.text.c_str());
    ImGui::PopTextWrapPos();
    ImGui::EndChild();
}

} // namespace cdrmix::ui
